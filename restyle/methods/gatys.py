"""Gatys, Ecker & Bethge (2016): style transfer by optimising the pixels.

The output is optimised so that its deep features match the content photo's and
its Gram matrices match the style image's. Extensions from Gatys et al. (2017),
"Controlling perceptual factors": colour preservation (luminance-only transfer,
colour-histogram matching), spatial scale (``style_scale``) and a coarse-to-fine
pyramid for large outputs, and spatial control: a different style (or none) per
masked region, with guided statistics and a feathered composite.

Stroke orientation (``stroke_angle``, ``stroke_field``; :mod:`restyle.stroke`): the
style image is turned so its strokes run in the requested direction, on a canvas of its
own size with a style mask of the painted pixels (the strokes keep their scale); a
field's direction bins become soft regions, each matching its own turned style.

The style statistic is selectable (``style_loss``: Gram, mean/std, MMD kernels,
Gaussian W2, sliced Wasserstein; see restyle/style_losses.py). Several styles are
blended by matching the weighted mixture of their feature distributions (for
Gram: mixing the Gram matrices with the given weights).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .. import imaging, stroke
from ..autotune import TUNED, report, tune
from ..backbone import get_vgg
from ..errors import RestyleError
from ..losses import content_loss, total_variation
from ..masks import Region, composite, coverage, mask_at, plan_regions
from ..optimize import Engine, Objective, Progress, PyramidProblem, pyramid_sizes
from ..params import (param, parse_layer_weights, precision_param, seed_param, size_param,
                      weights_param)
from ..style_losses import STYLE_LOSS_NAMES, get_style_loss, style_targets, style_term
from . import Inputs, Method, register


@dataclass
class GatysParams:
    size: int = size_param(512)
    iterations: int = param(150, "optimizer iterations at the final size "
                            "(each coarser pyramid level gets twice as many)", min=0, max=100000)
    strength: float = param(0.5, "style strength from 0 (the photo) to 1 (style only); "
                            "behaves the same across images", min=0.0, max=1.0)
    content_weight: float = param(1.0, "extra multiplier on the content loss", min=0.0)
    style_weight: float = param(1.0, "extra multiplier on the style loss", min=0.0)
    tv_weight: float = param(0.0, "total-variation (smoothness) weight; try 1-10 for noisy "
                             "results", min=0.0)
    content_layers: str = param("relu4_2", "content layers with optional weights, "
                                "e.g. relu4_2 or relu3_1:0.5,relu4_2", metavar="LAYERS")
    style_layers: str = param("relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
                              "style layers with optional weights, e.g. relu1_1:0.5,relu2_1",
                              metavar="LAYERS")
    style_scale: float = param(1.0, "size of the style's strokes relative to the output "
                               "(0.5 finer, 2 bolder)", min=0.05, max=8.0)
    preserve_color: str = param("none", "keep the photo's colours: 'luminance' transfers "
                                "only luminance, 'histogram' recolours the style first",
                                choices=("none", "luminance", "histogram"))
    init: str = param("content", "start image: content, noise, or the path of an image",
                      metavar="content|noise|PATH", kind="image")
    optimizer: str = param("lbfgs", "optimizer", choices=("lbfgs", "adam"))
    line_search: str = param("none", "L-BFGS line search ('none' as in the original: one "
                             "evaluation per step, the lower loss at equal evaluations at 128 "
                             "px and up; 'strong_wolfe' never steps uphill, safer on tiny "
                             "images)", choices=("none", "strong_wolfe"))
    lr: float = param(0.0, "learning rate (0 = the optimizer's default: 1 for L-BFGS, "
                      "0.02 for Adam)", min=0.0)
    min_size: int = param(256, "coarsest pyramid level's long side at least this (0 = no pyramid, "
                          "optimise at full size only)", min=0, max=imaging.MAX_SIDE)
    precision: str = precision_param()
    pooling: str = param("max", "VGG pooling", choices=("max", "avg"))
    weights: str = weights_param()
    style_loss: str = param("gram", "style statistic to match: gram (Gatys), meanstd (channel "
                            "mean and std), mmd-linear / mmd-poly / mmd-gauss (MMD kernels), w2 "
                            "(mean and covariance, Wasserstein-2), sliced (sliced Wasserstein)",
                            choices=STYLE_LOSS_NAMES)
    masks: str = param("", "one mask image per style, comma-separated, same order: white = "
                       "that style's region; pixels no mask covers keep the photo",
                       metavar="M1,M2", kind="mask", per_style=True)
    style_masks: str = param("", "optional mask per style image: only its white part is the "
                             "style (e.g. the sky of a painting)", metavar="M1,M2", kind="mask",
                             on="style", per_style=True)
    object_mask: str = param("", "stylise only the white part of this mask image; the rest "
                             "keeps the photo", metavar="PATH", kind="mask")
    box: str = param("", "stylise only the object inside this box (photo pixels), cut out with "
                     "GrabCut; needs restyle[masks]", metavar="x0,y0,x1,y1")
    invert_mask: bool = param(False, "with --object-mask or --box: stylise everything but "
                              "the object")
    feather: float = param(4.0, "width in pixels of the soft seam where masked regions meet "
                           "the photo", min=0.0, max=512.0, metavar="PIXELS")
    stroke_angle: str = stroke.angle_param()
    stroke_field: str = stroke.field_param()
    stroke_bins: int = stroke.bins_param()
    stroke_stretch: float = stroke.stretch_param()
    seed: int = seed_param("random seed (noise init, random projections, reproducible output)")
    auto: bool = param(False, "choose strength, style scale, style layer weights and TV weight "
                       "for this pair by short low-resolution trial runs (at most the final "
                       "run's compute; values you change from their defaults are kept)")


def level_iterations(final: int, levels: int) -> list[int]:
    """Iterations per pyramid level: ``final`` at the top, twice as many per level below.

    A level at half the size costs about a quarter as much, so the coarse levels
    (which settle the layout) are cheap and the expensive top level only refines.
    """
    return [final * 2 ** (levels - 1 - i) for i in range(levels)]


def initial_image(init: str, content: torch.Tensor, size: tuple[int, int], seed: int
                  ) -> torch.Tensor:
    if init == "content":
        return imaging.resize_tensor(content, size)
    if init == "noise":
        g = torch.Generator().manual_seed(seed)
        noise = torch.rand(1, 3, *size, generator=g)
        return (0.5 * noise + 0.5 * imaging.resize_tensor(content, size).mean((2, 3), keepdim=True)
                ).clamp(0, 1)
    img = imaging.to_tensor(imaging.load_image(init, "init image"))
    return imaging.resize_tensor(img, size)


class GatysProblem(PyramidProblem):
    """One Gatys transfer set up for the engine: pyramid sizes, targets per level, init.

    Kept apart from the optimization loop so that benchmarks and other methods can
    evaluate the exact same objective (e.g. in fp32 at the final size).
    """

    def __init__(self, content: torch.Tensor, styles: list[torch.Tensor],
                 style_weights: list[float], p: GatysParams,
                 regions: list[Region] | None = None):
        self.p = p
        self.loss = get_style_loss(p.style_loss, p.seed)
        self.regions = regions or [Region(None, list(range(len(styles))), list(style_weights),
                                          [None] * len(styles))]
        self.content_lw = parse_layer_weights(p.content_layers, "--content-layers")
        self.style_lw = parse_layer_weights(p.style_layers, "--style-layers")
        self.vgg = get_vgg(p.weights, pooling=p.pooling)
        self.vgg.check_layers(list(self.content_lw) + list(self.style_lw))
        self.content = content
        if p.preserve_color == "luminance":
            styles = [imaging.match_luminance(s, content) for s in styles]
            self.target_content = imaging.gray_rgb(content)
        else:
            self.target_content = content
            if p.preserve_color == "histogram":
                styles = [imaging.color_transfer(s, content) for s in styles]
        self.styles, self.style_weights = styles, list(style_weights)
        h, w = content.shape[-2:]
        self.sizes = pyramid_sizes(h, w, p.min_size) if p.min_size else [(h, w)]
        self.iterations = level_iterations(p.iterations, len(self.sizes))
        s = p.strength
        self.cw = p.content_weight * (1.0 - s)
        # the style weight that strength 0.5 stands for is the loss's calibrated balance
        # (100 for Gram: the classic look; see style_losses.py)
        self.sw = p.style_weight * self.loss.balance * (s / max(1.0 - s, 1e-3))

    def objective(self, size: tuple[int, int], bf16: bool) -> Objective:
        """The loss at one pyramid level: targets computed at that size."""
        vgg, clw = self.vgg, self.content_lw
        c = imaging.resize_tensor(self.target_content, size)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            cf = vgg(c, list(clw))
        cf = {k: v.float() for k, v in cf.items()}
        norm = sum(clw.values()) or 1.0
        obj = Objective()
        for name, lw in clw.items():
            obj = obj + Objective.term("content", lambda f, _, n=name: content_loss(f[n], cf[n]),
                                       [name], self.cw * lw / norm)
        for region in self.regions:
            targets = style_targets(self.loss, vgg, [self.styles[i] for i in region.styles],
                                    region.weights, list(self.style_lw), size[0] * size[1],
                                    self.p.style_scale, bf16, style_masks=region.style_masks)
            mask = None if region.mask is None else mask_at(region.mask, size)
            # a region's term is weighted by its area, so each of its pixels feels the same
            # balance of content and style as in an unmasked transfer
            obj = obj + (self.sw * region.area) * style_term(self.loss, targets, self.style_lw,
                                                             mask)
        if self.p.tv_weight:
            obj = obj + Objective.term("tv", lambda _, img: total_variation(img), (),
                                       self.p.tv_weight)
        return obj

    def cost(self, engine: Engine, size: tuple[int, int]) -> float:
        """A level's targets (a network pass for the photo and one for each style of each
        region, a pass being about a third of an evaluation) and its first evaluation, in
        seconds, from one evaluation timed on a small image."""
        layers = list(dict.fromkeys([*self.content_lw, *self.style_lw]))
        passes = 1 + sum(len(r.styles) for r in self.regions) * self.p.style_scale ** 2
        return engine.evaluation_seconds(size, layers) * (1 + passes / 3)

    def init(self, size: tuple[int, int]) -> torch.Tensor:
        p = self.p
        start = self.target_content if p.init == "content" else self.content
        out = initial_image(p.init, start, size, p.seed)
        return imaging.gray_rgb(out) if p.preserve_color == "luminance" else out

    def finish(self, out: torch.Tensor) -> torch.Tensor:
        return finished(out, self.content, self.regions, self.p)


def finished(out: torch.Tensor, content: torch.Tensor, regions: list[Region] | None,
             p: GatysParams) -> torch.Tensor:
    """A Gatys result as it is returned: the photo's colours with ``--preserve-color
    luminance``, and the photo wherever no masked region reaches."""
    if p.preserve_color == "luminance":
        out = imaging.combine_luminance(out, content)
    cover = coverage(regions) if regions else None
    if cover is not None:  # what no region covers is the photo, behind a feathered seam
        out = composite(out, content, cover, p.feather)
    return out


def oriented_regions(content: torch.Tensor, styles: list[torch.Tensor], regions: list[Region],
                     p: GatysParams) -> tuple[list[torch.Tensor], list[Region]]:
    """Stroke orientation (:mod:`restyle.stroke`) as regions: each style rotated to each
    requested direction on a canvas of its own size (so its strokes keep their scale), with
    a style mask of the pixels that came from the painting; a field's direction bins
    split every region into soft sub-regions."""
    plan = stroke.orient(p.stroke_angle, p.stroke_field, p.stroke_bins, content, styles)
    if plan is None:
        return styles, regions
    rotated: list[torch.Tensor] = []
    valid: list[torch.Tensor] = []
    index: dict[tuple[int, int], int] = {}
    for i, rows in enumerate(plan):
        for j, (rot, target, _) in enumerate(rows):
            image, inside = stroke.turn(styles[i], rot, target, p.stroke_stretch, crop=False)
            index[i, j] = len(rotated)
            rotated.append(image)
            valid.append(inside)
    out = []
    for region in regions:
        smasks = region.style_masks or [None] * len(region.styles)
        for j, (_, _, bin_mask) in enumerate(plan[0]):
            mask = bin_mask if region.mask is None else (
                region.mask if bin_mask is None else region.mask * bin_mask)
            idx = [index[i, j] for i in region.styles]
            sm = [valid[k] if m is None else stroke.rotate(m, plan[i][j][0], torch.zeros(1))[0]
                  * valid[k] for i, k, m in zip(region.styles, idx, smasks)]
            out.append(Region(mask, idx, list(region.weights), sm))
    return rotated, out


def stylize_by_optimization(content: torch.Tensor, styles: list[torch.Tensor],
                            style_weights: list[float], p: GatysParams,
                            callbacks: Sequence[Callable[[Progress], None]] = (),
                            regions: list[Region] | None = None) -> torch.Tensor:
    """Gatys transfer on tensors (content at its final size, styles at any size);
    ``regions`` (see masks.plan_regions) give each masked region its own style."""
    return GatysProblem(content, styles, style_weights, p, regions).solve(callbacks)


@register
class Gatys(Method):
    name = "gatys"
    family = "image-optimization"
    task = "transfer"
    summary = ("Gatys et al. 2016: optimise pixels to match VGG content features and style "
               "statistics (Gram or another --style-loss), optionally per masked region")
    Params = GatysParams

    def run(self, inputs: Inputs, params: GatysParams, callbacks=()) -> torch.Tensor:
        content, styles, regions = prepare(inputs, params, self.name)
        params = auto_tuned(params, content, styles, inputs.style_weights, regions, callbacks)
        return stylize_by_optimization(content, styles, inputs.style_weights, params, callbacks,
                                       regions)


def prepare(inputs: Inputs, params: GatysParams, method: str
            ) -> tuple[torch.Tensor, list[torch.Tensor], list[Region]]:
    """The content at the output size, the styles and the masked regions of a transfer
    with Gatys's parameters (``method`` names the method in errors), stroke orientation
    included (:func:`oriented_regions`)."""
    if inputs.content is None:
        raise RestyleError(f"{method} needs a content image")
    if not inputs.styles:
        raise RestyleError(f"{method} needs at least one style image")
    w, h = imaging.fit_size(*inputs.content.size, params.size)
    content = imaging.to_tensor(imaging.resize(inputs.content, (w, h)))
    styles = [imaging.to_tensor(s) for s in inputs.styles]
    regions = plan_regions(content, inputs.content.size, len(styles), inputs.style_weights,
                           masks=params.masks, style_masks=params.style_masks,
                           object_mask=params.object_mask, box=params.box,
                           invert=params.invert_mask, styles=styles)
    styles, regions = oriented_regions(content, styles, regions, params)
    return content, styles, regions


def auto_tuned(params: GatysParams, content: torch.Tensor, styles: list[torch.Tensor],
               style_weights: list[float], regions: list[Region], callbacks=()) -> GatysParams:
    """``params`` with ``--auto``'s choices (restyle/autotune.py) when it is on, else as
    given; the callbacks hear what was chosen."""
    if not params.auto:
        return params
    trial = {f.name: getattr(params, f.name) for f in dataclasses.fields(GatysParams)}
    if type(params) is not GatysParams:  # a method built on Gatys (anytime): its own start
        trial["init"] = "content"        # (a one-pass result) is not a Gatys init
    result = tune(content, styles, style_weights, GatysParams(**trial), regions)
    report(callbacks, result)
    return dataclasses.replace(params, auto=False,
                               **{k: getattr(result.params, k) for k in TUNED})
