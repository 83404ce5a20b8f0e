"""Large images in overlapping tiles, blended without seams.

A :class:`Grid` cuts an ``H x W`` image into tiles of about ``tile`` pixels that
overlap by ``overlap`` pixels. Every tile has a weight window that is 1 in its
interior and ramps linearly across the overlaps it shares with its neighbours;
the windows are normalised so that at every pixel the weights of the tiles
covering it sum to exactly 1 (a partition of unity). So

* blending tile outputs with the weights gives a seamless image (a value that is
  the same in every tile comes out unchanged), and
* statistics of the whole image (means, covariances of features) are weighted sums
  over the tiles with the same windows, each pixel counted exactly once
  (:class:`Moments`): the one-pass methods compute AdaIN/WCT statistics on the whole
  image, so the tiles agree.

Each tile is processed with ``margin`` extra pixels of context on every inner side
(cut off afterwards), so the network's receptive field sees real image content at
the tile's edges rather than padding. Tile starts are multiples of ``align`` so that
feature maps of a VGG layer ``2^k`` times smaller line up exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from .errors import RestyleError
from .runtime import check_cancelled


def axis_spans(n: int, tile: int, overlap: int, align: int = 16) -> list[tuple[int, int]]:
    """Spans ``[start, end)`` covering ``0..n`` with ``tile``-long spans overlapping by at
    least ``overlap``; starts are multiples of ``align``; one span when ``n <= tile``."""
    if tile - overlap <= align or tile < align:
        raise RestyleError(f"a tile of {tile} px cannot overlap by {overlap} px "
                           f"(tiles must be larger than the overlap by more than {align} px)")
    if n <= tile:
        return [(0, n)]
    # aligning a start moves it by less than align: plan with that much extra overlap
    count = math.ceil((n - tile) / (tile - overlap - align)) + 1
    spans = []
    for i in range(count):
        start = math.floor(i * (n - tile) / (count - 1) / align) * align
        start = n - tile if i == count - 1 else start  # the last span ends at the edge
        spans.append((start, start + tile))
    return spans


def axis_weights(n: int, spans: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Per span, a weight over ``0..n`` (zero outside it): linear ramps across the overlaps
    with neighbours, normalised so the weights sum to 1 everywhere."""
    raw = []
    for i, (a, b) in enumerate(spans):
        w = torch.zeros(n, dtype=torch.float64)
        w[a:b] = 1.0
        if i > 0 and spans[i - 1][1] > a:  # overlap with the previous span: ramp up
            k = spans[i - 1][1] - a
            w[a:a + k] = torch.arange(1, k + 1, dtype=torch.float64) / (k + 1)
        if i + 1 < len(spans) and spans[i + 1][0] < b:  # with the next one: ramp down
            k = b - spans[i + 1][0]
            w[b - k:b] = torch.minimum(w[b - k:b], torch.arange(k, 0, -1, dtype=torch.float64)
                                       / (k + 1))
        raw.append(w)
    total = torch.stack(raw).sum(0)
    return [w / total for w in raw]


@dataclass
class Tile:
    """One tile: its span, its context box (span plus margin, clipped) and its weights."""

    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int  # context box
    cy1: int
    cx0: int
    cx1: int
    wy: torch.Tensor  # weights over the context box's rows (zero in the margin)
    wx: torch.Tensor

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        """The context box of an (N, C, H, W) image."""
        return image[..., self.cy0:self.cy1, self.cx0:self.cx1]

    def weight(self, scale: int = 1, size: tuple[int, int] | None = None) -> torch.Tensor:
        """The (1, 1, h, w) weight window over the context box, averaged over ``scale x scale``
        cells (the positions of a feature map ``scale`` times smaller, of ``size``)."""
        wy, wx = self.wy, self.wx
        if scale > 1:
            wy = F.avg_pool1d(wy[None, None], scale, scale)[0, 0]
            wx = F.avg_pool1d(wx[None, None], scale, scale)[0, 0]
        if size is not None:
            wy, wx = _fit(wy, size[0]), _fit(wx, size[1])
        return (wy[:, None] * wx[None, :]).float()[None, None]


def _fit(w: torch.Tensor, n: int) -> torch.Tensor:
    if len(w) >= n:
        return w[:n]
    return torch.cat([w, w.new_zeros(n - len(w))])


class Grid:
    """The tiles of an ``h x w`` image (see the module docstring)."""

    def __init__(self, h: int, w: int, tile: int, overlap: int = 64, margin: int = 64,
                 align: int = 16):
        if margin % align:
            raise RestyleError(f"the tile margin must be a multiple of {align}")
        self.h, self.w, self.margin = h, w, margin
        ys, xs = axis_spans(h, tile, overlap, align), axis_spans(w, tile, overlap, align)
        wys, wxs = axis_weights(h, ys), axis_weights(w, xs)
        self.tiles: list[Tile] = []
        for (y0, y1), wy in zip(ys, wys):
            for (x0, x1), wx in zip(xs, wxs):
                cy0, cy1 = max(0, y0 - margin), min(h, y1 + margin)
                cx0, cx1 = max(0, x0 - margin), min(w, x1 + margin)
                self.tiles.append(Tile(y0, y1, x0, x1, cy0, cy1, cx0, cx1,
                                       wy[cy0:cy1].clone(), wx[cx0:cx1].clone()))

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[Tile]:
        for tile in self.tiles:
            check_cancelled()  # a cancelled studio job stops between tiles
            yield tile


class Moments:
    """Weighted first and second moments of feature vectors: mean (C,) and covariance (C, C),
    accumulated over tiles in float64. With ``full=False`` only the variances are kept
    (what AdaIN needs): a (C,) sum of squares instead of the (C, C) outer products, which at
    relu4_1 cost C times more."""

    def __init__(self, full: bool = True):
        self.full = full
        self.total = 0.0
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None  # (C, C), or its diagonal (C,) when not full

    def add(self, feat: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        """``feat`` (1, C, h, w); ``weight`` (1, 1, h, w) or None for all ones."""
        c = feat.shape[1]
        if self.full:
            f = feat[0].reshape(c, -1).double()
            w = (weight.reshape(-1).double() if weight is not None
                 else torch.ones(f.shape[1], dtype=torch.float64))
            fw = f * w
            s, o = fw.sum(1), fw @ f.T
        else:  # float32 matrix-vector sums, float64 totals: plenty for variances (1.1 ms
            # against 18.5 ms for the full float64 moments at relu4_1 of a 1024 px photo)
            f = feat[0].reshape(c, -1).float()
            w = (weight.reshape(-1).float() if weight is not None
                 else torch.ones(f.shape[1]))
            s, o = (f @ w).double(), ((f * f) @ w).double()
            w = w.double()
        self.sum = s if self.sum is None else self.sum + s
        self.outer = o if self.outer is None else self.outer + o
        self.total += float(w.sum())

    @classmethod
    def of(cls, feat: torch.Tensor, weight: torch.Tensor | None = None) -> "Moments":
        m = cls()
        m.add(feat, weight)
        return m

    def _check(self) -> None:
        if self.sum is None or self.total <= 0:
            raise RestyleError("no feature positions to compute statistics from "
                               "(is a mask empty?)")

    def mean(self) -> torch.Tensor:
        """(C,) float64."""
        self._check()
        return self.sum / self.total

    def cov(self) -> torch.Tensor:
        """(C, C) float64 population covariance."""
        if not self.full:
            raise ValueError("these moments were accumulated without covariances (full=False)")
        m = self.mean()
        return self.outer / self.total - torch.outer(m, m)

    def std(self, eps: float = 1e-5) -> torch.Tensor:
        """(C,) float64, as :func:`restyle.transforms.channel_stats` (sqrt(var + eps))."""
        self._check()
        m = self.mean()
        squares = torch.diagonal(self.outer) if self.full else self.outer
        var = (squares / self.total - m * m).clamp_min(0)
        return (var + eps).sqrt()
