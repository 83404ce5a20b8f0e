"""Portilla & Simoncelli (2000): the parametric texture model, the pre-neural baseline.

A texture is described by a few hundred statistics of a complex steerable pyramid
(4 scales x 4 orientations by default): marginal pixel statistics (mean, variance,
skewness, kurtosis), the central auto-correlations of the lowpass images and of the
coefficient magnitudes, the correlations of magnitudes across orientations and
across scales, and the cross-scale phase statistics (real parts against the
phase-doubled parents). A new texture is synthesised from noise by optimising its
pixels until its statistics match the exemplar's, with L-BFGS as in plenoptic's
metamer recipe (Portilla & Simoncelli projected onto each constraint in turn;
plenoptic showed that joint L-BFGS reaches lower error sooner).

The statistics themselves come from plenoptic's ``PortillaSimoncelli`` model
(``pip install 'restyle[ps]'``), which implements the grey-level model of the paper.
Colour follows Portilla & Simoncelli's colour extension: the exemplar's RGB values
are rotated onto their principal colour axes, the grey-level statistics are taken
of each of those channels, and the channels are tied together by their pixel
covariance and by cross-channel correlations of the pyramid coefficients (co-located
magnitudes and real parts across colours and orientations, and magnitudes and phases
against the coarser scale of the other colours). The optimisation runs over the
principal-axis channels, so colours stay on the exemplar's colour axes.

The pyramid is built with FFTs, so the model treats images as periodic: every result
tiles seamlessly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .. import imaging
from ..errors import RestyleError
from ..optimize import Progress, Stop
from ..params import param, precision_param, seed_param
from . import Inputs, Method, Takes, register
from .texture import parse_size

PLENOPTIC_VERSION = "2.1.1"
INSTALL_HINT = (f"pip install 'restyle[ps]' (or: pip install plenoptic=={PLENOPTIC_VERSION})")

#: principal colour axes carrying less than this fraction of the largest one's variance
#: are dropped (they hold JPEG noise, not colour structure): grey exemplars stay grey
MIN_COLOR_VARIANCE = 1e-3


@dataclass
class PortillaParams:
    size: str = param("256x256", "output size as WIDTHxHEIGHT (or one number for a square); "
                      "each side is rounded to a multiple of 2**n_scales while synthesising",
                      metavar="WxH", check=lambda v: parse_size(v), kind="canvas")
    iterations: int = param(400, "L-BFGS loss evaluations (the loss falls roughly as 1/N)",
                            min=0, max=100000)
    n_scales: int = param(4, "steerable-pyramid scales: the largest structure captured is "
                          "about 7 * 2**n_scales pixels", min=1, max=7)
    n_orientations: int = param(4, "orientation bands per scale", min=2, max=8)
    spatial_corr_width: int = param(7, "size of the central auto-correlation windows "
                                    "(odd)", min=3, max=15)
    scale: float = param(1.0, "size of the exemplar's features in the output (0.5 finer, "
                         "2 larger)", min=0.05, max=8.0)
    highpass_weight: float = param(100.0, "weight of the highpass-residual variance in the "
                                   "loss (plenoptic's choice: it keeps the result free of "
                                   "the starting noise's fine grain)", min=0.0)
    range_penalty: float = param(0.1, "weight of the penalty on pixels outside [0, 1]",
                                 min=0.0)
    precision: str = precision_param("arithmetic: auto (= fp32) or fp64 (slower, a little "
                                     "more accurate)", choices=("auto", "fp32", "fp64"))
    seed: int = seed_param("random seed of the starting noise")


def plenoptic():
    """The plenoptic package, or a RestyleError naming the install command."""
    try:
        import plenoptic as po
    except ImportError:
        raise RestyleError(f"portilla-simoncelli needs the plenoptic package; install it "
                           f"with: {INSTALL_HINT}") from None
    model = getattr(getattr(po, "models", None), "PortillaSimoncelli", None)
    needed = ("_compute_pyr_coeffs", "_compute_intermediate_representations",
              "_double_phase_pyr_coeffs", "convert_to_dict", "convert_to_tensor")
    if model is None or not all(hasattr(model, n) for n in needed):
        raise RestyleError(f"plenoptic {getattr(po, '__version__', '?')} is not supported; "
                           f"install the tested version: pip install "
                           f"plenoptic=={PLENOPTIC_VERSION}")
    return po


def min_side(n_scales: int, corr_width: int) -> int:
    """Smallest image side the model accepts: the coarsest lowpass band must hold a
    ``corr_width`` window, and every side must halve ``n_scales`` times exactly."""
    return corr_width * 2 ** n_scales


def work_side(side: int, n_scales: int) -> int:
    """``side`` rounded to the nearest multiple of 2**n_scales."""
    step = 2 ** n_scales
    return max(step, round(side / step) * step)


# ----------------------------------------------------------------------------- colour

@dataclass
class ColorBasis:
    """Principal colour axes of an exemplar: rgb = mean + axes @ channels."""

    mean: torch.Tensor  # (3,)
    axes: torch.Tensor  # (3, k), orthonormal columns, by decreasing variance

    @staticmethod
    def of(image: torch.Tensor) -> "ColorBasis":
        pixels = image[0].reshape(3, -1).double()
        mean = pixels.mean(1)
        cov = torch.cov(pixels)
        values, vectors = torch.linalg.eigh(cov)  # ascending
        order = torch.argsort(values, descending=True)
        values, vectors = values[order], vectors[:, order]
        if float(values[0]) <= 1e-10:
            raise RestyleError("the exemplar is a flat colour: there is no texture to model")
        keep = int((values > MIN_COLOR_VARIANCE * values[0]).sum())
        return ColorBasis(mean.float(), vectors[:, :keep].float().contiguous())

    @property
    def channels(self) -> int:
        return self.axes.shape[1]

    def project(self, rgb: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) RGB -> (1, k, H, W) principal-axis channels."""
        return torch.einsum("bchw,ck->bkhw", rgb - self.mean.view(1, 3, 1, 1).to(rgb),
                            self.axes.to(rgb))

    def rgb(self, channels: torch.Tensor) -> torch.Tensor:
        """(1, k, H, W) channels -> (1, 3, H, W) RGB (not clamped)."""
        return (torch.einsum("bkhw,ck->bchw", channels, self.axes.to(channels))
                + self.mean.view(1, 3, 1, 1).to(channels))


# ----------------------------------------------------------------------------- statistics

def _correlations(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Correlations of bands a (1, C, P, h, w) with b (1, C, Q, h, w): (C, C, P, Q)."""
    n = a.shape[-1] * a.shape[-2]
    cov = torch.einsum("xcphw,xdqhw->cdpq", a, b) / n
    va = a.pow(2).mean((-2, -1))[0]  # (C, P)
    vb = b.pow(2).mean((-2, -1))[0]  # (C, Q)
    return cov / (va[:, None, :, None] * vb[None, :, None, :]).clamp_min(1e-20).sqrt()


def _moments(x: torch.Tensor) -> torch.Tensor:
    """Mean, variance, skewness and kurtosis of each channel of (1, C, H, W): (C, 4)."""
    flat = x[0].reshape(x.shape[1], -1)
    mean = flat.mean(1)
    d = flat - mean[:, None]
    var = d.pow(2).mean(1)
    skew = d.pow(3).mean(1) / var.clamp_min(1e-20).pow(1.5)
    kurt = d.pow(4).mean(1) / var.clamp_min(1e-20).pow(2)
    return torch.stack([mean, var, skew, kurt], 1)


class PSStatistics(torch.nn.Module):
    """Portilla-Simoncelli statistics of a colour texture of one size, as one vector.

    ``forward(channels)`` takes the principal-axis channels (1, k, H, W) of an image
    and returns its statistics (1, N); ``weights`` (N,) is the loss weighting.
    """

    def __init__(self, shape: tuple[int, int], basis: ColorBasis, n_scales: int = 4,
                 n_orientations: int = 4, spatial_corr_width: int = 7,
                 highpass_weight: float = 100.0):
        super().__init__()
        po = plenoptic()
        self.basis = basis
        self.k = basis.channels
        self.model = po.models.PortillaSimoncelli(tuple(shape), n_scales=n_scales,
                                                  n_orientations=n_orientations,
                                                  spatial_corr_width=spatial_corr_width)
        # plenoptic's weighting of the grey-level statistics (its loss factory): the
        # non-differentiable min/max are left to the range penalty, and the highpass
        # residual's variance counts ``highpass_weight`` times
        ones = torch.ones(1, self.k, self.model._necessary_stats_mask.numel())
        w = self.model.convert_to_dict(ones)
        w["pixel_statistics"] = w["pixel_statistics"].clone()
        w["pixel_statistics"][..., -2:] = 0
        w["var_highpass_residual"] = w["var_highpass_residual"] * highpass_weight
        per_channel = self.model.convert_to_tensor(w).flatten()
        self.register_buffer("weights", torch.cat([per_channel, torch.ones(self.n_cross)]))

    @property
    def n_cross(self) -> int:
        """Length of :meth:`_cross`'s vector."""
        k, o, s = self.k, self.model.n_orientations, self.model.n_scales
        if k == 1:
            return 12
        pairs = k * (k - 1) // 2
        return 12 + pairs + s * 2 * pairs * o * o + (s - 1) * k * (k - 1) * 3 * o * o

    def _cross(self, channels: torch.Tensor) -> torch.Tensor:
        """RGB moments and the statistics that tie the colour channels together."""
        rgb = self.basis.rgb(channels)
        stats = [_moments(rgb).flatten()]
        k = self.k
        if k > 1:
            upper = torch.triu_indices(k, k, 1)
            cov = torch.einsum("xchw,xdhw->cd", channels, channels) / channels[0, 0].numel()
            stats.append(cov[upper[0], upper[1]])
            _, coeffs, _, _ = self.model._compute_pyr_coeffs(channels)
            mags, reals = self.model._compute_intermediate_representations(coeffs)
            parent_mags, parent_phases = (self.model._double_phase_pyr_coeffs(coeffs)
                                          if len(coeffs) > 1 else ([], []))
            off = ~torch.eye(k, dtype=torch.bool)
            for s in range(len(coeffs)):
                # co-located magnitudes and real parts, across colours (all orientations)
                stats.append(_correlations(mags[s], mags[s])[upper[0], upper[1]].flatten())
                stats.append(_correlations(reals[s], reals[s])[upper[0], upper[1]].flatten())
                if s < len(parent_mags):
                    # against the coarser scale of the other colours (phase-doubled parents)
                    stats.append(_correlations(mags[s], parent_mags[s])[off].flatten())
                    stats.append(_correlations(reals[s], parent_phases[s])[off].flatten())
        return torch.cat(stats)[None]

    def forward(self, channels: torch.Tensor) -> torch.Tensor:
        per_channel = self.model(channels).flatten(1)
        stats = torch.cat([per_channel, self._cross(channels)], 1)
        assert stats.shape[-1] == self.weights.numel(), "statistics and weights disagree"
        return stats


def ps_loss(stats: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted L2 distance between statistics vectors (plenoptic's metamer loss)."""
    return torch.linalg.vector_norm(weights * (stats - target))


# ----------------------------------------------------------------------------- synthesis

def prepare_exemplar(exemplar: torch.Tensor, p: PortillaParams) -> torch.Tensor:
    """The exemplar at ``scale``, centre-cropped to sides the pyramid can halve."""
    h, w = exemplar.shape[-2:]
    if p.scale != 1.0:
        exemplar = imaging.resize_tensor(exemplar, (max(1, round(h * p.scale)),
                                                    max(1, round(w * p.scale))))
        h, w = exemplar.shape[-2:]
    need = min_side(p.n_scales, p.spatial_corr_width)
    if min(h, w) < need:
        raise RestyleError(f"the exemplar is {w}x{h} (after --scale) but {p.n_scales} scales "
                           f"need at least {need} px a side; use a larger exemplar or "
                           f"--scale, or fewer --n-scales")
    step = 2 ** p.n_scales
    ch, cw = h // step * step, w // step * step
    top, left = (h - ch) // 2, (w - cw) // 2
    return exemplar[..., top:top + ch, left:left + cw]


def synthesize(exemplar: torch.Tensor, size: tuple[int, int], p: PortillaParams,
               callbacks: Sequence[Callable[[Progress], None]] = ()) -> torch.Tensor:
    """A (1, 3, h, w) texture with the PS statistics of ``exemplar`` (1, 3, H, W)."""
    width, height = size
    need = min_side(p.n_scales, p.spatial_corr_width)
    work = (work_side(height, p.n_scales), work_side(width, p.n_scales))
    if min(work) < need:
        raise RestyleError(f"--size {width}x{height} is too small for {p.n_scales} scales "
                           f"(at least {need} px a side); use fewer --n-scales")
    dtype = torch.float64 if p.precision == "fp64" else torch.float32
    exemplar = prepare_exemplar(exemplar, p).to(dtype)
    basis = ColorBasis.of(exemplar)
    kw = dict(n_scales=p.n_scales, n_orientations=p.n_orientations,
              spatial_corr_width=p.spatial_corr_width, highpass_weight=p.highpass_weight)
    with torch.no_grad():
        target = PSStatistics(tuple(exemplar.shape[-2:]), basis, **kw).to(dtype)(
            basis.project(exemplar))
    model = PSStatistics(work, basis, **kw).to(dtype)
    po = plenoptic()

    # start: white noise with the exemplar's variance along each colour axis
    g = torch.Generator().manual_seed(p.seed)
    std = basis.project(exemplar).std(dim=(-2, -1), keepdim=True)
    z = (torch.randn(1, basis.channels, *work, generator=g, dtype=dtype) * std)
    z.requires_grad_(True)
    best = {"loss": math.inf, "z": z.detach().clone()}
    n = p.iterations
    state = {"evals": 0, "start": time.perf_counter()}

    def closure():
        opt.zero_grad(set_to_none=True)
        rgb = basis.rgb(z)
        stats_loss = ps_loss(model(z), target, model.weights)
        penalty = po.regularize.penalize_range(rgb, allowed_range=(0.0, 1.0))
        total = stats_loss + p.range_penalty * penalty
        total.backward()
        loss = float(total.detach())
        if not math.isfinite(loss):
            raise FloatingPointError("the Portilla-Simoncelli loss became NaN or infinite")
        state["evals"] += 1
        if loss < best["loss"]:
            best["loss"], best["z"] = loss, z.detach().clone()
        i = state["evals"]
        progress = Progress(0, 1, i, n, i, n, work, loss,
                            {"stats": float(stats_loss.detach()),
                             "range": float(penalty.detach())},
                            rgb.detach().clamp(0, 1), time.perf_counter() - state["start"])
        for cb in callbacks:
            cb(progress)
        return total.detach()

    opt = torch.optim.LBFGS([z], lr=1.0, max_iter=max(1, n), max_eval=max(1, n),
                            history_size=100, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-14)
    try:
        while state["evals"] < n:
            before = state["evals"]
            opt.step(closure)
            if state["evals"] == before:  # converged
                break
    except Stop:
        pass
    out = basis.rgb(best["z"]).clamp(0, 1).float()
    if work != (height, width):
        out = imaging.resize_tensor(out, (height, width), wrap=True)
    return out


def texture_statistics(image: torch.Tensor, basis: ColorBasis | None = None,
                       **model_kw) -> torch.Tensor:
    """The PS statistics vector of an image (1, 3, H, W) (for tests and comparisons)."""
    basis = basis or ColorBasis.of(image)
    with torch.no_grad():
        return PSStatistics(tuple(image.shape[-2:]), basis, **model_kw)(basis.project(image))


@register
class PortillaSimoncelli(Method):
    name = "portilla-simoncelli"
    family = "image-optimization"
    task = "texture"
    takes = Takes(content="none", style_word="exemplar")
    summary = ("Portilla & Simoncelli 2000: match steerable-pyramid statistics from noise "
               "(pre-neural baseline; tiles seamlessly; needs restyle[ps])")
    Params = PortillaParams

    def run(self, inputs: Inputs, p: PortillaParams, callbacks=()) -> torch.Tensor:
        if not inputs.styles:
            raise RestyleError("texture synthesis needs an exemplar image")
        if len([w for w in inputs.style_weights if w > 0]) > 1:
            raise RestyleError("portilla-simoncelli synthesises from one exemplar; give one "
                               "image")
        if p.spatial_corr_width % 2 == 0:
            raise RestyleError(f"--spatial-corr-width must be odd, not {p.spatial_corr_width}")
        size = parse_size(p.size)
        plenoptic()  # a missing dependency is reported before any work
        index = next(i for i, w in enumerate(inputs.style_weights) if w > 0)
        exemplar = imaging.to_tensor(inputs.styles[index])
        return synthesize(exemplar, size, p, callbacks)
