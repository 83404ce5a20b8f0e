"""The Python API: ``restyle.transfer`` and ``restyle.texture``.

Both accept paths, PIL images, arrays or tensors, take the method's parameters
as keyword arguments (see ``restyle methods``), and return a PIL image. With
``output=`` the result is also written atomically.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
from typing import Callable, Sequence

import torch
from PIL import Image

from . import imaging, run
from .backbone import read_safetensors_metadata
from .batch import run_batch
from .errors import RestyleError
from .imaging import ImageLike
from .machine import machine_info
from .methods.analogy import AnalogyParams, analogy_images
from .methods.network import default_model
from .nets.decoder import LEVELS, default_decoder_path, read_metadata
from .nets.lite import FORMAT, FORMAT_VERSION, default_lite_path
from .nets.stylenet import get_stylenet, installed_models, models_dir, read_stylenet_metadata
from .optimize import Progress
from .params import make
from .video import stylize_video
from .run import parse_style_names, parse_style_specs, style_file_names  # noqa: F401  (public)

#: The method ``transfer`` (and ``restyle transfer``) uses when none is named.
DEFAULT_TRANSFER = "anytime"


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
    req = run.request(method, content, style, style_weights=style_weights, params=params,
                      output=output, overwrite=overwrite, task="transfer")
    return run.execute(req, callbacks)


def style_sheet(content: ImageLike, *, model: str = "", size: int = 256, columns: int = 0,
                output: str | os.PathLike | None = None, overwrite: bool = False,
                **params) -> Image.Image:
    """A contact sheet of every style of a trained network on ``content``: the photo first,
    then one labelled tile per style at ``size`` px (long side). ``model`` is a name from
    ``restyle models`` or a file (default: the default model); further keyword arguments
    are the network method's (``strength``, ``preserve_color``, ``runtime``...)."""
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
    req = run.request(method, None, exemplar, style_weights=exemplar_weights, params=params,
                      output=output, overwrite=overwrite, task="texture")
    return run.execute(req, callbacks)


def dream(image: ImageLike, *, method: str = "deepdream", output: str | os.PathLike | None = None,
          overwrite: bool = False, callbacks: Sequence[Callable[[Progress], None]] = (),
          **params) -> Image.Image:
    """Deep Dream on ``image``: amplify what VGG16 layers or channels respond to.

    E.g. ``restyle.dream("photo.jpg", layers="relu4_3", octaves=4, size=512)`` or
    ``layers="relu4_3:12,87"`` for two channels. Returns a PIL RGB image.
    """
    req = run.request(method, image, None, params=params, output=output, overwrite=overwrite,
                      task="dream")
    return run.execute(req, callbacks)


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
    req = run.request("mrf", content, style, params=params, output=output,
                      overwrite=overwrite, task="transfer")
    return run.execute(req, callbacks)


def analogy(a: ImageLike, b_prime: ImageLike, *, output: str | os.PathLike | None = None,
            b_output: str | os.PathLike | None = None, overwrite: bool = False,
            callbacks: Sequence[Callable[[Progress], None]] = (), **params
            ) -> tuple[Image.Image, Image.Image]:
    """Deep image analogy (Liao et al. 2017): returns ``(A', B)`` for images A and B'.

    A' has A's content in B''s appearance, B has B''s content in A's appearance. With
    ``output`` / ``b_output`` they are also written atomically. Keyword arguments are the
    ``analogy`` method's parameters (e.g. ``size=384``).
    """
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
    return run_batch(inputs, output, style, method=method, style_weights=style_weights,
                     engine=engine, address=address, workers=workers, format=format,
                     retry_failed=retry_failed, progress=progress, **params)
