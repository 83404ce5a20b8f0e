"""Semantic maps: colour-coded regions ("two-bit doodles") turned into label channels.

A semantic map paints each region of an image in one flat colour (sky white, water blue,
...). Semantic style transfer (Champandard 2016) needs the style image's map and the
target's map to use the *same* colours for the same kinds of region. Hand-drawn and
resized maps are never perfectly flat (anti-aliased edges, JPEG noise, off-by-one colours
such as ``#010101`` for black), so the colours are first grouped into a palette:

1. every colour that covers at least ``min_share`` of either map is a palette candidate,
   taken most frequent first; a candidate within ``tolerance`` (RGB distance) of a colour
   already in the palette joins it;
2. every pixel takes the nearest palette colour.

A region of the target whose colour the style map does not have cannot be painted; that is
an error naming the colours (style regions absent from the target are simply unused).
The label channels are one-hot at pixel level and averaged down to each feature layer's
resolution (soft labels at region borders).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import RestyleError

MIN_SHARE = 0.005
TOLERANCE = 48.0


def hex_colour(rgb) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def _colour_counts(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = arr.reshape(-1, 3).astype(np.int64)
    codes = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    values, counts = np.unique(codes, return_counts=True)
    colours = np.stack([(values >> 16) & 255, (values >> 8) & 255, values & 255], 1)
    return colours, counts


def _candidates(arr: np.ndarray, min_share: float) -> list[tuple[np.ndarray, float]]:
    colours, counts = _colour_counts(arr)
    share = counts / counts.sum()
    order = np.argsort(-counts, kind="stable")
    return [(colours[i].astype(np.float64), float(share[i])) for i in order if share[i] >= min_share]


@dataclass
class MapPair:
    """The style and target maps as label indices over one shared palette."""

    palette: np.ndarray  # (K, 3) RGB of each label
    style: np.ndarray  # (H, W) int labels of the style map
    target: np.ndarray  # (H', W') int labels of the target map

    def channels(self, which: str, size: tuple[int, int]) -> torch.Tensor:
        """One-hot labels ``(1, K, h, w)`` of the ``"style"`` or ``"target"`` map at ``size``.

        The one-hot map is resized with area averaging (soft labels at the borders);
        upsampling (a map smaller than ``size``) takes the nearest label.
        """
        labels = torch.from_numpy(getattr(self, which)).long()
        onehot = F.one_hot(labels, len(self.palette)).permute(2, 0, 1).unsqueeze(0).float()
        h, w = labels.shape
        if (h, w) == tuple(size):
            return onehot
        if size[0] <= h and size[1] <= w:
            return F.interpolate(onehot, size=size, mode="area")
        return F.interpolate(onehot, size=size, mode="nearest")


def _assign(arr: np.ndarray, palette: np.ndarray) -> np.ndarray:
    colours, _ = _colour_counts(arr)
    d = ((colours[:, None, :].astype(np.float64) - palette[None]) ** 2).sum(-1)
    nearest = d.argmin(1)
    flat = arr.reshape(-1, 3).astype(np.int64)
    codes = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    ccodes = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    pos = np.searchsorted(ccodes, codes)  # np.unique returns sorted codes
    return nearest[pos].reshape(arr.shape[:2])


def pair_maps(style_map: Image.Image, target_map: Image.Image, min_share: float = MIN_SHARE,
              tolerance: float = TOLERANCE) -> MapPair:
    """Group the colours of both maps into one palette and label every pixel.

    Raises :class:`RestyleError` when the target map has a region colour that the style map
    lacks, listing those colours and the style map's.
    """
    s = np.asarray(style_map.convert("RGB"))
    t = np.asarray(target_map.convert("RGB"))
    palette: list[np.ndarray] = []
    style_labels: set[int] = set()

    def add(colour: np.ndarray) -> int:
        for i, p in enumerate(palette):
            if np.sqrt(((p - colour) ** 2).sum()) <= tolerance:
                return i
        palette.append(colour)
        return len(palette) - 1

    for colour, _ in _candidates(s, min_share):
        style_labels.add(add(colour))
    missing = []
    for colour, share in _candidates(t, min_share):
        i = add(colour)
        if i not in style_labels:
            missing.append((colour, share))
    if missing:
        listed = ", ".join(f"{hex_colour(c)} ({100 * sh:.0f}% of it)" for c, sh in missing)
        have = ", ".join(hex_colour(palette[i]) for i in sorted(style_labels))
        raise RestyleError(f"the target map has region colour(s) the style map lacks: {listed}; "
                           f"the style map's regions are {have} (use the same colours for "
                           "the same kind of region)")
    pal = np.stack(palette)
    return MapPair(pal, _assign(s, pal), _assign(t, pal))
