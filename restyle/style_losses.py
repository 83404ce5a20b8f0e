"""Style losses for the optimization methods: one *target* and one *term* per statistic.

A :class:`StyleLoss` turns style images' features into a target per layer
(:meth:`StyleLoss.target`, computed once per style and pyramid level) and scores an
output's features against it (:meth:`StyleLoss.loss`). :func:`style_targets` and
:func:`style_term` do the rest for every loss alike, so Gatys transfer, texture
synthesis and spatial control need no per-loss branches.

Blending several styles means the same thing for every loss: the target is the
statistic of the *mixture* of the styles' feature distributions, each style
contributing its weight's share of the samples (for Gram: the weighted mean of
the Gram matrices; for mean/std and mean/covariance: the mixture's moments; for
MMD: the weighted mean of the kernel mean embeddings; for sliced Wasserstein: the
quantiles of the pooled, weighted projections).

``balance`` is the style weight that ``strength=0.5`` stands for with that loss,
calibrated so that every loss gives a comparably stylised result
(docs/style-losses.md).
"""

from __future__ import annotations

import math
import zlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import torch

from . import imaging
from .errors import RestyleError
from .losses import (augmented_gram, channel_mean_std, feature_samples, gaussian_w2_loss,
                     gram_loss, gram_matrix, mean_covariance, mean_std_loss, mmd_gauss_loss,
                     mmd_linear_loss, mmd_poly_loss, psd_sqrt, quantile_levels,
                     random_fourier_embedding,
                     sliced_wasserstein_loss, w2_ridge, weighted_quantiles)
from .masks import mask_at
from .optimize import Objective

STYLE_LOSSES: dict[str, type["StyleLoss"]] = {}


def _register(cls):
    STYLE_LOSSES[cls.name] = cls
    return cls


def get_style_loss(name: str, seed: int = 0) -> "StyleLoss":
    """The style loss called ``name`` (``--style-loss``); random parts drawn from ``seed``."""
    if name not in STYLE_LOSSES:
        raise RestyleError(f"unknown style loss {name!r}; one of: {', '.join(STYLE_LOSSES)}")
    return STYLE_LOSSES[name](seed)


class StyleLoss(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    #: style weight that strength 0.5 stands for (Gram: 100, the classic balance)
    balance: ClassVar[float]

    def __init__(self, seed: int = 0):
        self.seed = seed

    def generator(self, layer: str) -> torch.Generator:
        """A generator seeded by (seed, layer): the same random parts for a layer at every
        pyramid level and for every style region."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(layer.encode()))

    @abstractmethod
    def target(self, layer: str, features: Sequence[torch.Tensor], weights: Sequence[float],
               masks: Sequence[torch.Tensor | None]) -> Any:
        """The target of one layer from the styles' feature maps (1, C, h, w), blended
        with ``weights`` (summing to 1); ``masks`` (1, 1, h, w) or None select parts."""

    @abstractmethod
    def loss(self, features: torch.Tensor, target: Any, mask: torch.Tensor | None = None
             ) -> torch.Tensor:
        """The relative loss of the output's features (in the region ``mask``)."""


def _mixture_moments(features, weights, masks):
    """Mean (1, C) and covariance (1, C, C) of the weighted mixture of the styles' features."""
    mean = second = None
    for f, w, m in zip(features, weights, masks):
        mu, cov = mean_covariance(f, m)
        mu, s2 = mu.double(), cov.double() + mu.double().unsqueeze(-1) * mu.double().unsqueeze(-2)
        mean = w * mu if mean is None else mean + w * mu
        second = w * s2 if second is None else second + w * s2
    cov = second - mean.unsqueeze(-1) * mean.unsqueeze(-2)
    return mean, 0.5 * (cov + cov.transpose(-1, -2))


@_register
class GramStyle(StyleLoss):
    name = "gram"
    summary = "Gram matrices (Gatys et al. 2016): second moments of the features"
    balance = 100.0

    def target(self, layer, features, weights, masks):
        return sum(w * gram_matrix(f, m) for f, w, m in zip(features, weights, masks))

    def loss(self, features, target, mask=None):
        return gram_loss(features, target, mask)


@_register
class MeanStdStyle(StyleLoss):
    name = "meanstd"
    summary = "channel means and standard deviations (Li et al. 2017, BN statistics)"
    balance = 500.0

    def target(self, layer, features, weights, masks):
        mean = second = 0.0
        for f, w, m in zip(features, weights, masks):
            mu, sd = channel_mean_std(f, m)
            mean = mean + w * mu
            second = second + w * (sd * sd + mu * mu)
        return mean, (second - mean * mean).clamp_min(1e-10).sqrt()

    def loss(self, features, target, mask=None):
        return mean_std_loss(features, target[0], target[1], mask)


@_register
class W2Style(StyleLoss):
    name = "w2"
    summary = "mean and covariance: Wasserstein-2 distance between Gaussians"
    balance = 30.0
    ridge = 1e-2

    def target(self, layer, features, weights, masks):
        mean, cov = _mixture_moments(features, weights, masks)
        delta = w2_ridge(cov, self.ridge)
        sqrt = psd_sqrt(cov + delta[..., None, None] * torch.eye(cov.shape[-1], dtype=cov.dtype))
        return mean.float(), cov, sqrt

    def loss(self, features, target, mask=None):
        mean, cov, sqrt = target
        return gaussian_w2_loss(features, mean, cov, sqrt, mask, ridge=self.ridge)


@_register
class MMDLinearStyle(StyleLoss):
    name = "mmd-linear"
    summary = "MMD with the linear kernel x.y (matches channel means only; Li et al. 2017)"
    balance = 500.0

    def target(self, layer, features, weights, masks):
        return sum(w * channel_mean_std(f, m)[0] for f, w, m in zip(features, weights, masks))

    def loss(self, features, target, mask=None):
        return mmd_linear_loss(features, target, mask)


@_register
class MMDPolyStyle(StyleLoss):
    name = "mmd-poly"
    summary = "MMD with the polynomial kernel (c + x.y)^2, c = the style's mean |y|^2"
    balance = 600.0

    def target(self, layer, features, weights, masks):
        # c: the mixture's mean squared feature norm, so c and x.y have the same scale
        c = sum(w * torch.diagonal(gram_matrix(f, m), dim1=-2, dim2=-1).sum(-1)
                for f, w, m in zip(features, weights, masks)).reshape(())
        return c, sum(w * augmented_gram(f, c, m) for f, w, m in zip(features, weights, masks))

    def loss(self, features, target, mask=None):
        return mmd_poly_loss(features, target[1], target[0], mask)


@_register
class MMDGaussStyle(StyleLoss):
    name = "mmd-gauss"
    summary = ("MMD with a Gaussian kernel (width: the style's RMS pairwise distance), "
               "via 256 random Fourier features")
    balance = 2000.0
    features_dim = 256

    def target(self, layer, features, weights, masks):
        _, cov = _mixture_moments(features, weights, masks)
        # sigma^2 = E |y - y'|^2 = 2 tr Cov, the mean squared distance of style samples
        sigma = math.sqrt(max(2.0 * float(torch.diagonal(cov, dim1=-2, dim2=-1).sum()), 1e-12))
        g = self.generator(layer)
        c = features[0].shape[1]
        freqs = torch.randn(c, self.features_dim, generator=g) / sigma
        phases = torch.rand(self.features_dim, generator=g) * (2 * math.pi)
        emb = sum(w * random_fourier_embedding(f, freqs, phases, m)
                  for f, w, m in zip(features, weights, masks))
        return emb, freqs, phases

    def loss(self, features, target, mask=None):
        emb, freqs, phases = target
        return mmd_gauss_loss(features, emb, freqs, phases, mask)


@_register
class SlicedStyle(StyleLoss):
    name = "sliced"
    summary = ("sliced Wasserstein: sorted projections on C random directions per layer, "
               "fixed per seed")
    balance = 700.0
    #: quantiles kept per direction (a fixed grid: styles of any size, masked or blended,
    #: give targets of the same shape, and the output interpolates in it)
    grid = 4096

    def directions(self, layer: str, channels: int) -> torch.Tensor:
        d = torch.randn(channels, channels, generator=self.generator(layer))
        return d / d.norm(dim=0, keepdim=True)

    def target(self, layer, features, weights, masks):
        dirs = self.directions(layer, features[0].shape[1])
        values, sample_w = [], []
        for f, w, m in zip(features, weights, masks):
            x, wts = feature_samples(f, m)
            values.append(dirs.t() @ x[0].t())  # (K, P)
            sample_w.append(w * wts[0])
        values = torch.cat(values, 1)
        return dirs, weighted_quantiles(values, torch.cat(sample_w), quantile_levels(self.grid))

    def loss(self, features, target, mask=None):
        dirs, quantiles = target
        return sliced_wasserstein_loss(features, dirs, quantiles, mask)


STYLE_LOSS_NAMES = tuple(STYLE_LOSSES)


def style_targets(loss: StyleLoss, vgg, styles: Sequence[torch.Tensor],
                  weights: Sequence[float], layers: Sequence[str], area: float, scale: float,
                  bf16: bool, wrap: bool = False,
                  style_masks: Sequence[torch.Tensor | None] | None = None) -> dict[str, Any]:
    """Blended targets per layer: each style resized so its area is ``area * scale**2``.

    ``style_masks`` (one (1, 1, H, W) mask or None per style) restrict a style's
    statistics to part of it, following the mask at every layer's resolution.
    """
    masks = list(style_masks) if style_masks is not None else [None] * len(styles)
    kept = [(s, w, m) for s, w, m in zip(styles, weights, masks) if w > 0]
    total = sum(w for _, w, _ in kept)
    feats, ws, ms = [], [], []
    for style, w, mask in kept:
        h, w_ = style.shape[-2:]
        k = (area * scale * scale / (h * w_)) ** 0.5
        size = (max(16, round(h * k)), max(16, round(w_ * k)))
        s = imaging.resize_tensor(style, size, wrap=wrap)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            feats.append(vgg(s, list(layers)))
        ws.append(w / total)
        ms.append(None if mask is None else mask_at(mask, size))
    targets = {}
    with torch.no_grad():
        for name in layers:
            fs = [f[name] for f in feats]
            targets[name] = loss.target(
                name, fs, ws, [None if m is None else mask_at(m, f.shape[-2:])
                               for m, f in zip(ms, fs)])
    return targets


def style_term(loss: StyleLoss, targets: dict[str, Any], layer_weights: dict[str, float],
               mask: torch.Tensor | None = None) -> Objective:
    """The style objective: ``loss`` against ``targets`` on each layer, layer weights
    normalised to sum to 1; with ``mask`` (1, 1, H, W at the image size) only the
    region it covers is scored (guided statistics)."""
    norm = sum(layer_weights.values()) or 1.0
    cache: dict[tuple, torch.Tensor] = {}

    def region(hw):
        if mask is None:
            return None
        if hw not in cache:
            cache[hw] = mask_at(mask, hw)
        return cache[hw]

    obj = Objective()
    for name, lw in layer_weights.items():
        def fn(f, _, n=name):
            return loss.loss(f[n], targets[n], region(tuple(f[n].shape[-2:])))
        obj = obj + Objective.term("style", fn, [name], lw / norm)
    return obj
