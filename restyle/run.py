"""The request layer: one way from a method, its inputs and parameters to an image.

Every front end (the Python API, the ``restyle`` command, the studio, batch, video and
the benchmarks) goes through here instead of through each other:

* :func:`request` validates everything cheap before any work: the method (and the task
  a front end serves), its parameters, the inputs the method declares it takes
  (:class:`restyle.methods.Takes`: a content image required, optional or none; styles as
  images, as names inside a trained model, or none), their blend weights and the output
  path (writable; no input file, nor a file a parameter names, is overwritten).
* :meth:`Request.inputs` loads the images (the style images once, for many contents);
  :func:`execute` runs the method with callbacks, keeps what ``auto`` chose and writes
  the output atomically.
* :func:`fingerprint`, :func:`file_hash` and :func:`file_params` say what an output
  depends on (batch's manifest; a resumable run's settings).

The style helpers (``a.jpg:0.3,b.jpg:0.7`` specs, blend weights, style names) live here
too, so that no front end borrows another's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image

from . import imaging
from .errors import RestyleError
from .fsio import atomic_write  # noqa: F401  (the one atomic write, for front ends)
from .imaging import ImageLike
from .methods import Inputs, Method, get_method
from .optimize import Progress
from .params import FILE_KINDS, fields_of_kind, make

Callbacks = Sequence[Callable[[Progress], None]]


# ----------------------------------------------------------------------------- styles

def blend_weights(n: int, style_weights: Sequence[float] | None) -> list[float]:
    """The blend weights of ``n`` styles (1 each when not given), checked."""
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
        weights = blend_weights(len(names), style_weights)
    return names, blend_weights(len(names), weights)


def style_file_names(styles: Sequence[ImageLike]) -> list[str]:
    """The file name (without folder and extension) of each style given as a path, "" for
    the others: how a method recognises a painting (e.g. one a trained network knows)."""
    return [Path(s).stem if isinstance(s, (str, os.PathLike)) else "" for s in styles]


def as_list(value) -> list:
    """One image (or name) or a list of them, as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def label(word: str) -> str:
    """How an input is called in messages: "content image", "style image", "image"."""
    return word if word == "image" else f"{word} image"


# ----------------------------------------------------------------------------- requests

#: ``request(method, PER_ITEM, ...)``: the content comes later, one per item (a batch's
#: photos, a video's frames), given to :meth:`Request.inputs` / :func:`execute`.
PER_ITEM = object()

@dataclass
class Request:
    """A validated request: run :func:`execute` (or :meth:`inputs` and the method)."""

    method: Method
    params: Any  # the method's Params, validated
    content: Any  # an image (path, PIL, array, tensor, bytes, stream) or None
    styles: list  # style images, or style names (``method.takes.styles == "names"``)
    weights: list[float]
    output: Path | None = None
    _style_images: list | None = field(default=None, repr=False)

    @property
    def names(self) -> list[str]:
        """What :class:`~restyle.methods.Inputs` carries as style names."""
        if self.method.takes.styles == "names":
            return list(self.styles)
        return style_file_names(self.styles)

    def style_images(self) -> list[Image.Image]:
        """The style images, loaded once (an empty list for name styles)."""
        if self._style_images is None:
            takes = self.method.takes
            self._style_images = [] if takes.styles != "images" else [
                imaging.load_image(s, label(takes.style_word)) for s in self.styles]
        return self._style_images

    def inputs(self, content: Any = None) -> Inputs:
        """The method's inputs, with this request's content or ``content`` (a frame, one
        of a batch's photos) in its place."""
        content = self.content if content is None else content
        loaded = None if content is None else imaging.load_image(
            content, label(self.method.takes.content_word))
        return Inputs(loaded, self.style_images(), list(self.weights), self.names)

    def settings(self) -> dict:
        """What the output depends on besides the inputs' contents, as plain data."""
        return {"method": self.method.name, "params": dataclasses.asdict(self.params),
                "styles": [s if isinstance(s, str) else "" for s in self.styles],
                "weights": self.weights}


def method_for(name: str, task: str | None = None, use: str | None = None) -> Method:
    """The registered method ``name``; with ``task``, one of that task, else a one-line
    error naming the API function it belongs to, or what ``use`` (e.g. "video", "batch")
    needs instead."""
    m = get_method(name)
    if task is not None and m.task != task:
        if use:
            raise RestyleError(f"method {name!r} is a {m.task} method; {use} needs a {task} "
                               "method (see `restyle methods`)")
        raise RestyleError(f"method {name!r} is a {m.task} method; use restyle.{m.task}")
    return m


def request(method: str | Method, content: Any = None, styles: Any = (), *,
            style_weights: Sequence[float] | None = None, params: dict | None = None,
            output: str | os.PathLike | None = None, overwrite: bool = False,
            task: str | None = None, sources: Sequence = ()) -> Request:
    """Validate a request without loading anything (see the module docstring). ``styles``
    are images or names as the method declares; ``sources`` are further input files the
    output must not replace."""
    m = method_for(method, task) if isinstance(method, str) else method
    takes = m.takes
    style_list = [] if styles is None else as_list(styles)
    if content is PER_ITEM:
        content = None
    elif takes.content == "required" and content is None:
        raise RestyleError(f"{m.name} needs a {label(takes.content_word)}")
    if takes.content == "none" and content is not None:
        raise RestyleError(f"{m.name} takes no content image")
    if takes.styles == "none":
        if style_list:
            raise RestyleError(f"{m.name} takes no style images")
        names, weights = [], []
    elif not style_list:
        raise RestyleError(f"give at least one {label(takes.style_word)}")
    elif takes.styles == "names":  # styles inside a trained model
        names, weights = parse_style_names(style_list, style_weights)
    else:
        names, weights = style_list, blend_weights(len(style_list), style_weights)
    p = params if dataclasses.is_dataclass(params) else make(m.Params, **(params or {}))
    out = None
    if output is not None:
        out = imaging.check_output_path(output, overwrite, [
            *sources, content, style_list, *vars(p).values()])
    return Request(m, p, content, names, weights, out)


class _TunedRecorder:
    """A callback that keeps what ``auto=True`` chose (see restyle.autotune.report)."""

    def __init__(self):
        self.record: dict | None = None

    def __call__(self, progress: Progress) -> None:
        pass

    def on_tuned(self, result) -> None:
        self.record = result.record()


def execute(req: Request, callbacks: Callbacks = (), content: Any = None,
            output: Path | None = None) -> Image.Image:
    """Run the request (with ``content`` in place of its own, when given) and write its
    output (or ``output``) atomically; returns the PIL image. What ``auto`` chose is in
    ``image.info["auto"]``."""
    tuned = _TunedRecorder()
    if getattr(req.params, "auto", False) is True:  # keep what the tuner chooses
        callbacks = [*callbacks, tuned]
    result = imaging.to_pil(req.method.run(req.inputs(content), req.params, callbacks))
    if tuned.record is not None:
        result.info["auto"] = tuned.record
    out = output or req.output
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        imaging.save_image(result, out, overwrite=True)
    return result


# ----------------------------------------------------------------------------- fingerprints

def canonical(obj) -> str:
    """``obj`` as canonical JSON (sorted keys, no spaces, ASCII)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fingerprint(obj, length: int = 16) -> str:
    """A short SHA-256 of ``obj``'s canonical JSON: equal settings, equal fingerprints."""
    return hashlib.sha256(canonical(obj).encode()).hexdigest()[:length]


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's contents."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_params(params) -> tuple[dict, dict]:
    """``(values, hashes)``: the parameters as a dict with every file that a file-kind
    parameter (mask, map, image, path: :data:`restyle.params.FILE_KINDS`) names made
    absolute, and the content hashes of those files by parameter. Keywords (``content``,
    ``hed``, a model's name) are not files and stay as they are."""
    values, hashes = dataclasses.asdict(params), {}
    for f in fields_of_kind(type(params), *FILE_KINDS):
        value = values[f.name]
        parts = [Path(v.strip()).expanduser() for v in value.split(",")] \
            if isinstance(value, str) and value.strip() else []
        if parts and all(q.is_file() for q in parts):
            values[f.name] = ",".join(os.path.abspath(q) for q in parts)
            hashes[f.name] = ",".join(file_hash(q) for q in parts)
    return values, hashes
