"""Masks for spatial control (Gatys et al. 2017, "Controlling perceptual factors").

A mask is a (1, 1, H, W) float tensor in [0, 1]: 1 where a region is, 0 where it
is not, values between on soft edges. Mask images are read with the one image
loader (white = inside; grey = partly; colours count by their luminance), a box
can be turned into an object mask with OpenCV's GrabCut, masks are taken to each
network layer's resolution by area averaging (so edges stay soft), and the final
composite blends the stylised regions into the photo across a feathered seam.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import imaging
from .errors import RestyleError
from .imaging import ImageLike

log = logging.getLogger("restyle")

#: install hint for the optional OpenCV dependency
OPENCV_HINT = "pip install 'restyle[masks]' (or: pip install 'opencv-python-headless>=4.10,<5')"


def mask_at(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``mask`` (N, 1, H, W) at ``size`` (h, w): area averages when shrinking, so a hard
    edge becomes a soft one at coarse layers; bilinear when growing."""
    h, w = int(size[0]), int(size[1])
    if tuple(mask.shape[-2:]) == (h, w):
        return mask
    if h <= mask.shape[-2] and w <= mask.shape[-1]:
        return F.interpolate(mask, size=(h, w), mode="area")
    return F.interpolate(mask, size=(h, w), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0, 1)


def load_mask(src: ImageLike, what: str, size: tuple[int, int], empty_ok: bool = False
              ) -> torch.Tensor:
    """A mask image as a (1, 1, h, w) tensor at ``size`` = (h, w): its luminance in [0, 1].

    A mask with another aspect ratio than the image it belongs to is stretched to
    fit, with a note; an empty (all black) mask is an error unless ``empty_ok`` (the
    one-pass methods' per-style masks, where a style may paint nowhere as long as some
    mask is white).
    """
    img = imaging.load_image(src, what)
    h, w = size
    if abs(img.size[0] / img.size[1] - w / h) > 0.01 * (w / h):
        name = src if isinstance(src, str) else type(src).__name__
        log.warning(f"note: {what} {name} is {img.size[0]}x{img.size[1]}, the image is "
                    f"{w}x{h} (another shape); the mask is stretched to fit")
    mask = imaging.luminance(imaging.to_tensor(img)).clamp(0, 1)
    mask = mask_at(mask, (h, w))
    if not empty_ok and float(mask.max()) < 0.5 / 255:
        name = src if isinstance(src, str) else type(src).__name__
        raise RestyleError(f"{what} {name} is empty (all black): it selects nothing; white "
                           "marks the region")
    return mask


def parse_box(spec: str) -> tuple[int, int, int, int]:
    """'x0,y0,x1,y1' -> (x0, y0, x1, y1), the corners in the photo's pixels."""
    m = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*", str(spec))
    if not m:
        raise RestyleError(f"--box must be x0,y0,x1,y1 in the photo's pixels (e.g. "
                           f"120,40,380,460), not {spec!r}")
    x0, y0, x1, y1 = map(int, m.groups())
    if x1 <= x0 or y1 <= y0:
        raise RestyleError(f"--box {spec}: x1 must be greater than x0 and y1 greater than y0")
    return x0, y0, x1, y1


def _opencv():
    try:
        import cv2
    except ImportError:
        raise RestyleError(f"--box uses OpenCV's GrabCut, which is not installed; run: "
                           f"{OPENCV_HINT}") from None
    return cv2


def grabcut_mask(image: torch.Tensor, box: tuple[int, int, int, int], iterations: int = 5
                 ) -> torch.Tensor:
    """Segment the object inside ``box`` (x0, y0, x1, y1 in ``image``'s pixels) with
    GrabCut (Rother et al. 2004); returns a (1, 1, H, W) mask, 1 on the object."""
    cv2 = _opencv()
    h, w = image.shape[-2:]
    x0, y0, x1, y1 = box
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise RestyleError(f"--box lies outside the photo ({w}x{h} at the working size) or "
                           "is too small")
    if x0 == 0 and y0 == 0 and x1 == w and y1 == h:
        raise RestyleError("--box covers the whole photo; GrabCut needs some background "
                           "outside the box")
    rgb = (image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    labels = np.zeros((h, w), np.uint8)
    bg_model, fg_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, labels, (x0, y0, x1 - x0, y1 - y0), bg_model, fg_model, iterations,
                cv2.GC_INIT_WITH_RECT)
    fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if not fg.any():
        raise RestyleError("GrabCut found no object inside --box; draw the box tighter "
                           "around the object or pass --object-mask")
    return torch.from_numpy(fg.astype(np.float32))[None, None]


def feather(mask: torch.Tensor, pixels: float) -> torch.Tensor:
    """Soften a mask's edges: a Gaussian blur whose 10-90 % ramp is about ``pixels`` wide."""
    if pixels <= 0:
        return mask
    return imaging.gaussian_blur(mask, pixels / 2.56).clamp(0, 1)


def composite(stylised: torch.Tensor, photo: torch.Tensor, coverage: torch.Tensor,
              feather_pixels: float) -> torch.Tensor:
    """The stylised image where ``coverage`` is 1, the photo where it is 0, blended
    across a seam feathered over ``feather_pixels``."""
    a = feather(mask_at(coverage, stylised.shape[-2:]), feather_pixels)
    photo = imaging.resize_tensor(photo, tuple(stylised.shape[-2:]))
    return (a * stylised + (1 - a) * photo).clamp(0, 1)


@dataclass
class Region:
    """Part of the output with its own style: ``mask`` (None = everywhere) and the styles
    (indices, blend weights, optional style-side masks) whose statistics it must match."""

    mask: torch.Tensor | None
    styles: list[int]
    weights: list[float]
    style_masks: list[torch.Tensor | None] = field(default_factory=list)

    @property
    def area(self) -> float:
        """Fraction of the image the region covers."""
        return 1.0 if self.mask is None else float(self.mask.mean())


def _split(spec: str) -> list[str]:
    return [s.strip() for s in spec.split(",") if s.strip()]


def plan_regions(photo: torch.Tensor, photo_size: tuple[int, int], n_styles: int,
                 weights: Sequence[float], masks: str = "", style_masks: str = "",
                 object_mask: str = "", box: str = "", invert: bool = False,
                 styles: Sequence[torch.Tensor] = ()) -> list[Region]:
    """The regions of a transfer from the spatial-control parameters.

    ``photo`` is the content at the working size, ``photo_size`` (w, h) its original
    size (the frame of ``box``). ``masks``: one mask image per style, comma-separated;
    ``object_mask`` / ``box``: one region styled by all styles (``invert``: everything
    but the object); ``style_masks``: one mask per style image restricting its
    statistics to part of the painting. Nothing given: one region, everywhere.
    """
    h, w = photo.shape[-2:]
    if sum(bool(x) for x in (masks, object_mask, box)) > 1:
        raise RestyleError("use one of --masks (a region per style), --object-mask or --box")
    if invert and not (object_mask or box):
        raise RestyleError("--invert-mask needs --object-mask or --box")
    smasks: list[torch.Tensor | None] = [None] * n_styles
    if style_masks:
        names = _split(style_masks)
        if len(names) != n_styles:
            raise RestyleError(f"--style-masks: got {len(names)} masks for {n_styles} style "
                               f"image(s); give one per style, in the same order")
        smasks = [load_mask(m, "style mask", tuple(s.shape[-2:])) for m, s in zip(names, styles)]
    if masks:
        names = _split(masks)
        if len(names) != n_styles:
            raise RestyleError(f"--masks: got {len(names)} masks for {n_styles} style image(s); "
                               f"give one mask per style, in the same order")
        if len(set(float(x) for x in weights)) > 1:
            raise RestyleError("--style-weights do not apply with --masks: each mask gets "
                               "its own style")
        return [Region(load_mask(m, "mask", (h, w)), [i], [1.0], [smasks[i]])
                for i, m in enumerate(names)]
    region = None
    if object_mask:
        region = load_mask(object_mask, "object mask", (h, w))
    elif box:
        x0, y0, x1, y1 = parse_box(box)
        sx, sy = w / photo_size[0], h / photo_size[1]
        region = grabcut_mask(photo, (round(x0 * sx), round(y0 * sy),
                                      round(x1 * sx), round(y1 * sy)))
    if region is not None and invert:
        region = 1.0 - region
        if float(region.max()) < 0.5 / 255:
            raise RestyleError("the inverted mask is empty: the object covers the whole photo")
    return [Region(region, list(range(n_styles)), list(weights), smasks)]


def coverage(regions: Sequence[Region]) -> torch.Tensor | None:
    """Where any region applies (clamped sum of masks), or None if one covers everything."""
    if any(r.mask is None for r in regions):
        return None
    return torch.stack([r.mask for r in regions]).sum(0).clamp(0, 1)
