"""The Python API: ``restyle.transfer`` and ``restyle.texture``.

Both accept paths, PIL images, arrays or tensors, take the method's parameters
as keyword arguments (see ``restyle methods``), and return a PIL image. With
``output=`` the result is also written atomically.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

from PIL import Image

from . import imaging
from .errors import RestyleError
from .imaging import ImageLike
from .methods import Inputs, get_method
from .optimize import Progress
from .params import make


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


def parse_style_names(styles: Sequence, style_weights: Sequence[float] | None
                      ) -> tuple[list[str], list[float]]:
    """Style names with weights, from ``["a", "b"]`` plus weights or ``["a:0.3", "b:0.7"]``."""
    names, weights = [], []
    for s in styles:
        if not isinstance(s, str):
            raise RestyleError("this method takes style names (see `restyle models`), "
                               "not images")
        name, _, w = s.partition(":")
        try:
            weights.append(float(w) if w else 1.0)
        except ValueError:
            raise RestyleError(f"bad style weight in {s!r}: write NAME or NAME:WEIGHT") from None
        names.append(name.strip())
    if style_weights is not None:
        weights = _weights(len(names), style_weights)
    return names, _weights(len(names), weights)


def transfer(content: ImageLike, style: ImageLike | Sequence[ImageLike], *,
             method: str = "gatys", style_weights: Sequence[float] | None = None,
             output: str | os.PathLike | None = None, overwrite: bool = False,
             callbacks: Sequence[Callable[[Progress], None]] = (), **params) -> Image.Image:
    """Render ``content`` in the style of ``style`` (one image or a list to blend).

    ``style_weights`` blends several styles (normalised to sum to 1). Remaining
    keyword arguments are the method's parameters, e.g. ``size=512,
    strength=0.7, preserve_color="luminance"``. Returns a PIL RGB image.
    """
    styles = _styles(style)
    if not styles:
        raise RestyleError("give at least one style image")
    if get_method(method).style_kind == "name":  # styles inside a trained model
        names, weights = parse_style_names(styles, style_weights)
        return _run(method, "transfer", params, output, overwrite, callbacks, lambda: Inputs(
            imaging.load_image(content, "content image"), [], weights, names))
    return _run(method, "transfer", params, output, overwrite, callbacks, lambda: Inputs(
        imaging.load_image(content, "content image"),
        [imaging.load_image(s, "style image") for s in styles],
        _weights(len(styles), style_weights)))


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
        _weights(len(exemplars), exemplar_weights)))


def _run(method: str, task: str, params: dict, output, overwrite: bool, callbacks,
         load: Callable[[], Inputs]) -> Image.Image:
    """Validate everything cheap first (method, parameters, output path), then load the
    inputs, run the method and write the output atomically."""
    m = get_method(method)
    if m.task != task:
        other = "restyle.texture" if m.task == "texture" else "restyle.transfer"
        raise RestyleError(f"method {method!r} is a {m.task} method; use {other}")
    p = make(m.Params, **params)
    out_path = imaging.check_output_path(output, overwrite) if output is not None else None
    result = imaging.to_pil(m.run(load(), p, callbacks))
    if out_path is not None:
        imaging.save_image(result, out_path, overwrite=True)
    return result
