"""The Python API: ``restyle.transfer`` and ``restyle.texture``.

Both accept paths, PIL images, arrays or tensors, take the method's parameters
as keyword arguments (see ``restyle methods``), and return a PIL image. With
``output=`` the result is also written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from . import imaging
from .errors import RestyleError
from .imaging import ImageLike
from .methods import Inputs, get_method
from .optimize import Progress
from .params import make

#: The method ``transfer`` (and ``restyle transfer``) uses when none is named.
DEFAULT_TRANSFER = "anytime"


def _styles(style: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    if isinstance(style, (list, tuple)):
        return list(style)
    return [style]


def _weights(n: int, style_weights: Sequence[float] | None) -> list[float]:
    if style_weights is None:
        return [1.0] * n
    weights = [float(w) for w in style_weights]
    if len(weights) != n:
        raise RestyleError(f"got {len(weights)} style weights for {n} style images")
    if any(w < 0 or w != w for w in weights) or sum(weights) <= 0:
        raise RestyleError("style weights must be non-negative and not all zero")
    return weights


def parse_style_specs(specs: Sequence[str], files: bool = False) -> tuple[list[str], list[float]]:
    """Styles with blend weights, written ``"a:0.3,b:0.7"``, as items ``["a:0.3", "b:0.7"]``
    or both; a style without ``:WEIGHT`` weighs 1. With ``files`` the styles are image paths:
    an item naming an existing file is taken whole (its name may hold ':' or ',')."""
    names, weights = [], []
    for spec in specs:
        items = [spec] if files and Path(spec).is_file() else spec.split(",")
        for item in filter(None, (i.strip() for i in items)):
            name, w = item, ""
            if ":" in item and not (files and Path(item).is_file()):
                name, _, w = item.rpartition(":")
            try:
                weights.append(float(w) if w else 1.0)
            except ValueError:
                raise RestyleError(f"bad style weight in {item!r}: write STYLE or STYLE:WEIGHT, "
                                   "blends as a:0.5,b:0.5") from None
            names.append(name.strip())
    return names, weights


def parse_style_names(styles: Sequence, style_weights: Sequence[float] | None
                      ) -> tuple[list[str], list[float]]:
    """Style names with weights, from ``["a", "b"]`` plus weights, ``["a:0.3", "b:0.7"]``
    or ``["a:0.3,b:0.7"]``."""
    if not all(isinstance(s, str) for s in styles):
        raise RestyleError("this method takes style names (see `restyle models`), not images")
    names, weights = parse_style_specs(styles)
    if style_weights is not None:
        weights = _weights(len(names), style_weights)
    return names, _weights(len(names), weights)


def transfer(content: ImageLike, style: ImageLike | Sequence[ImageLike], *,
             method: str | None = None, style_weights: Sequence[float] | None = None,
             output: str | os.PathLike | None = None, overwrite: bool = False,
             callbacks: Sequence[Callable[[Progress], None]] = (), **params) -> Image.Image:
    """Render ``content`` in the style of ``style`` (one image or a list to blend).

    ``content`` and the style images may be paths, PIL images, arrays, tensors or encoded
    image bytes. ``style_weights`` blends several styles (normalised to sum to 1).
    Remaining keyword arguments are the method's parameters, e.g. ``size=512,
    strength=0.7, preserve_color="luminance"``. ``method`` defaults to ``"network"`` (a
    trained style network; the styles are names in it, blends as ``"a:0.3,b:0.7"``) when
    ``model=`` is given, else ``"anytime"`` (a one-pass result refined by optimization for
    ``budget=`` seconds; ``method="gatys"`` optimises for its iterations). Returns a PIL
    RGB image.
    """
    method = method or ("network" if params.get("model") else DEFAULT_TRANSFER)
    styles = _styles(style)
    if not styles:
        raise RestyleError("give at least one style image")
    if get_method(method).style_kind == "name":  # styles inside a trained model
        names, weights = parse_style_names(styles, style_weights)
        return _run(method, "transfer", params, output, overwrite, callbacks, lambda: Inputs(
            imaging.load_image(content, "content image"), [], weights, names), [content])
    return _run(method, "transfer", params, output, overwrite, callbacks, lambda: Inputs(
        imaging.load_image(content, "content image"),
        [imaging.load_image(s, "style image") for s in styles],
        _weights(len(styles), style_weights), style_file_names(styles)), [content, styles])


def style_file_names(styles: Sequence[ImageLike]) -> list[str]:
    """The file name (without folder and extension) of each style given as a path, "" for
    the others: how a method recognises a painting (e.g. one a trained network knows)."""
    return [Path(s).stem if isinstance(s, (str, os.PathLike)) else "" for s in styles]


def style_sheet(content: ImageLike, *, model: str = "", size: int = 256, columns: int = 0,
                output: str | os.PathLike | None = None, overwrite: bool = False,
                **params) -> Image.Image:
    """A contact sheet of every style of a trained network on ``content``: the photo first,
    then one labelled tile per style at ``size`` px (long side). ``model`` is a name from
    ``restyle models`` or a file (default: the default model); further keyword arguments
    are the network method's (``strength``, ``preserve_color``, ``runtime``...)."""
    from .methods.network import default_model
    from .nets.stylenet import get_stylenet
    out_path = imaging.check_output_path(output, overwrite, [content]) \
        if output is not None else None
    model = model or default_model()
    net = get_stylenet(model)
    photo = imaging.load_image(content, "content image")
    tiles = [("photo", imaging.resize(photo, imaging.fit_size(*photo.size, size)))]
    tiles += [(name, transfer(photo, name, method="network", model=model, size=size, **params))
              for name in net.styles]
    sheet = imaging.labelled_grid(tiles, size, columns or math.ceil(math.sqrt(len(tiles))))
    if out_path is not None:
        imaging.save_image(sheet, out_path, overwrite=True)
    return sheet


def models() -> dict:
    """The installed style networks (with their styles), decoders and distilled AdaIN model,
    as ``restyle models`` lists them: ``{"models_dir", "models": {name: {...}}, "decoders":
    {level: {...}}, "adain_lite": {...}}``."""
    import json

    from .backbone import read_safetensors_metadata
    from .nets.decoder import LEVELS, default_decoder_path, read_metadata
    from .nets.stylenet import installed_models, models_dir, read_stylenet_metadata
    nets = {}
    for name, path in installed_models().items():
        meta = read_stylenet_metadata(path)
        nets[name] = {"path": str(path), "styles": json.loads(meta["styles"]),
                      "steps": meta.get("steps")}
    decoders = {}
    for level in LEVELS:
        p = default_decoder_path(level)
        entry: dict = {"path": str(p), "installed": p.exists()}
        if p.exists():
            try:
                meta = read_metadata(p)
                entry.update(steps=meta.get("steps"), heldout_psnr=meta.get("heldout_psnr"))
            except RestyleError as e:
                entry["error"] = str(e)
        decoders[level] = entry
    from .nets.lite import FORMAT, FORMAT_VERSION, default_lite_path
    lp = default_lite_path()
    lite: dict = {"path": str(lp), "installed": lp.exists()}
    if lp.exists():
        try:
            meta = read_safetensors_metadata(lp, FORMAT, FORMAT_VERSION, "distilled AdaIN model")
            lite.update(steps=meta.get("steps"), width=meta.get("width"))
        except RestyleError as e:
            lite["error"] = str(e)
    return {"models_dir": str(models_dir()), "models": nets, "decoders": decoders,
            "adain_lite": lite}


def info() -> dict:
    """What ``restyle info`` prints: versions (restyle, torch, onnxruntime, Python), CPU,
    threads, the device restyle runs on, and :func:`models`."""
    import importlib.metadata

    import torch

    from .evaluate.bench import machine_info
    try:
        ort = importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        ort = None
    return {**machine_info(), "onnxruntime": ort,
            "interop_threads": torch.get_num_interop_threads(), "device": "cpu",
            "cuda_available": torch.cuda.is_available(), **models()}


def texture(exemplar: ImageLike | Sequence[ImageLike], *, method: str = "texture",
            exemplar_weights: Sequence[float] | None = None, output: str | os.PathLike | None = None,
            overwrite: bool = False, callbacks: Sequence[Callable[[Progress], None]] = (),
            **params) -> Image.Image:
    """Synthesise a new texture like ``exemplar`` (e.g. ``size="512x512", tileable=True``).

    Several exemplars are mixed with ``exemplar_weights``.
    """
    exemplars = _styles(exemplar)
    return _run(method, "texture", params, output, overwrite, callbacks, lambda: Inputs(
        None, [imaging.load_image(e, "exemplar image") for e in exemplars],
        _weights(len(exemplars), exemplar_weights)), [exemplars])


class _TunedRecorder:
    """A callback that keeps what ``auto=True`` chose (see restyle.autotune.report)."""

    def __init__(self):
        self.record: dict | None = None

    def __call__(self, progress: Progress) -> None:
        pass

    def on_tuned(self, result) -> None:
        self.record = result.record()


def _run(method: str, task: str, params: dict, output, overwrite: bool, callbacks,
         load: Callable[[], Inputs], sources: Sequence = ()) -> Image.Image:
    """Validate everything cheap first (method, parameters, output path: writable, and
    none of the input files ``sources`` nor those the parameters name), then load the
    inputs, run the method and write the output atomically."""
    m = get_method(method)
    if m.task != task:
        other = f"restyle.{m.task}"  # each task has its API function of the same name
        raise RestyleError(f"method {method!r} is a {m.task} method; use {other}")
    tuned = _TunedRecorder()
    if params.get("auto") is True:  # keep what the tuner chooses, to go with the image
        callbacks = [*callbacks, tuned]
    p = make(m.Params, **params)
    out_path = imaging.check_output_path(output, overwrite, [*sources, *vars(p).values()]) \
        if output is not None else None
    result = imaging.to_pil(m.run(load(), p, callbacks))
    if tuned.record is not None:
        result.info["auto"] = tuned.record
    if out_path is not None:
        imaging.save_image(result, out_path, overwrite=True)
    return result


def dream(image: ImageLike, *, method: str = "deepdream", output: str | os.PathLike | None = None,
          overwrite: bool = False, callbacks: Sequence[Callable[[Progress], None]] = (),
          **params) -> Image.Image:
    """Deep Dream on ``image``: amplify what VGG16 layers or channels respond to.

    E.g. ``restyle.dream("photo.jpg", layers="relu4_3", octaves=4, size=512)`` or
    ``layers="relu4_3:12,87"`` for two channels. Returns a PIL RGB image.
    """
    return _run(method, "dream", params, output, overwrite, callbacks, lambda: Inputs(
        imaging.load_image(image, "image"), [], []), [image])


def doodle(style: ImageLike, *, style_map: str | os.PathLike, target_map: str | os.PathLike,
           content: ImageLike | None = None, output: str | os.PathLike | None = None,
           overwrite: bool = False, callbacks: Sequence[Callable[[Progress], None]] = (),
           **params) -> Image.Image:
    """Semantic style transfer (Champandard 2016): paint ``target_map`` with ``style``.

    ``style_map`` colour-codes the regions of the style image, ``target_map`` those of the
    output with the same colours. Without ``content`` the target map alone is painted
    ("neural doodle"); with a photo its content is kept as well. Remaining keyword
    arguments are the ``mrf`` method's parameters (see ``restyle methods``).
    """
    for name, value in (("style_map", style_map), ("target_map", target_map)):
        if not isinstance(value, (str, os.PathLike)):
            raise RestyleError(f"{name} must be the path of an image file, not "
                               f"{type(value).__name__}")
    params = dict(params, style_map=os.fspath(style_map), target_map=os.fspath(target_map))
    return _run("mrf", "transfer", params, output, overwrite, callbacks, lambda: Inputs(
        imaging.load_image(content, "content image") if content is not None else None,
        [imaging.load_image(style, "style image")], [1.0]), [style, content])


def analogy(a: ImageLike, b_prime: ImageLike, *, output: str | os.PathLike | None = None,
            b_output: str | os.PathLike | None = None, overwrite: bool = False,
            callbacks: Sequence[Callable[[Progress], None]] = (), **params
            ) -> tuple[Image.Image, Image.Image]:
    """Deep image analogy (Liao et al. 2017): returns ``(A', B)`` for images A and B'.

    A' has A's content in B''s appearance, B has B''s content in A's appearance. With
    ``output`` / ``b_output`` they are also written atomically. Keyword arguments are the
    ``analogy`` method's parameters (e.g. ``size=384``).
    """
    from .methods.analogy import AnalogyParams, analogy_images
    p = make(AnalogyParams, **params)
    paths = [imaging.check_output_path(o, overwrite, [a, b_prime, *vars(p).values()])
             if o is not None else None for o in (output, b_output)]
    if paths[0] is not None and paths[1] is not None and paths[0].resolve() == paths[1].resolve():
        raise RestyleError("the outputs for A' and B must be different files")
    images = analogy_images(imaging.load_image(a, "image A"),
                            imaging.load_image(b_prime, "image B'"), p, callbacks)
    results = tuple(imaging.to_pil(t) for t in images)
    for img, path in zip(results, paths):
        if path is not None:
            imaging.save_image(img, path, overwrite=True)
    return results


def video(source: str | os.PathLike, style: ImageLike | Sequence[ImageLike], *,
          output: str | os.PathLike, method: str = "adain",
          style_weights: Sequence[float] | None = None, resume: bool = False,
          overwrite: bool = False, progress=None,
          callbacks: Sequence[Callable[[Progress], None]] = (), **params):
    """Stylise a video file or a folder of frames, frame by frame, with temporal consistency.

    ``output`` is a video (.mp4, .mov, .mkv, .webm: the input's frame rate and audio
    track), a .gif, or a folder name (PNG frames). Keyword arguments are the method's
    parameters (``size=512``, ...) and the video options of
    :class:`restyle.video.VideoParams` (``temporal="off"``, ``blend=0.7``, ``frames=60``,
    ...). ``resume=True`` continues an interrupted run; ``progress`` gets a
    :class:`restyle.video.FrameProgress` after each frame. Returns a
    :class:`restyle.video.VideoResult`. Needs ``pip install 'restyle[video]'``.

    (Not exported as ``restyle.video``: that name is the :mod:`restyle.video` module.)
    """
    from .video import stylize_video
    return stylize_video(source, style, output, method=method, style_weights=style_weights,
                         resume=resume, overwrite=overwrite, progress=progress,
                         callbacks=callbacks, **params)


def batch(inputs, output: str | os.PathLike, style: ImageLike | Sequence, *,
          method: str = "adain", style_weights: Sequence[float] | None = None,
          engine: str = "local", address: str | None = None, workers: int = 0,
          format: str = "png", retry_failed: bool = False, progress=None, **params):
    """Stylise every image and video that ``inputs`` name into the folder ``output``.

    ``inputs`` is a folder (searched recursively), a glob pattern, a file, a text file
    listing paths, or a list of these. Each input's folder structure is mirrored under
    ``output`` with sanitised names; ``output/restyle-batch.sqlite`` records every item, so
    calling again skips finished items, resumes an interrupted run and reprocesses only
    what changed parameters affect. A bad input is recorded as failed and the batch goes
    on. ``engine="ray"`` runs on Ray Data actors (a local Ray, or the cluster at
    ``address``; ``pip install 'restyle[ray]'``). Keyword arguments are the method's
    parameters and the video options (see :func:`video`). ``progress(result, summary)`` is
    called with ``None`` once the work is planned, then with each finished item's result.
    Returns a :class:`restyle.batch.BatchSummary`.

    (Not exported as ``restyle.batch``: that name is the :mod:`restyle.batch` module.)
    """
    from .batch import run_batch
    return run_batch(inputs, output, style, method=method, style_weights=style_weights,
                     engine=engine, address=address, workers=workers, format=format,
                     retry_failed=retry_failed, progress=progress, **params)
