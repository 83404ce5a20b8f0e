"""Gatys, Ecker & Bethge (2016): style transfer by optimising the pixels.

The output is optimised so that its deep features match the content photo's and
its Gram matrices match the style image's. Extensions from Gatys et al. (2017),
"Controlling perceptual factors": colour preservation (luminance-only transfer,
colour-histogram matching), spatial scale (``style_scale``) and a coarse-to-fine
pyramid for large outputs. Several styles are blended by mixing their Gram
matrices with the given weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .. import imaging
from ..backbone import get_vgg
from ..errors import RestyleError
from ..losses import content_loss, gram_loss, gram_matrix, total_variation
from ..optimize import Engine, Objective, Progress, pyramid_sizes, run_pyramid
from ..params import param, parse_layer_weights
from . import Inputs, Method, register

#: Style weight that ``strength=0.5`` stands for: the calibrated balance of the
#: relative content and style losses (see losses.py) that gives the classic look.
STYLE_BALANCE = 100.0


@dataclass
class GatysParams:
    size: int = param(512, "long side of the output in pixels", min=16, max=imaging.MAX_SIDE)
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
                      metavar="content|noise|PATH")
    optimizer: str = param("lbfgs", "optimizer", choices=("lbfgs", "adam"))
    line_search: str = param("none", "L-BFGS line search ('none' as in the original: one "
                             "evaluation per step)", choices=("none", "strong_wolfe"))
    lr: float = param(0.0, "learning rate (0 = the optimizer's default: 1 for L-BFGS, "
                      "0.02 for Adam)", min=0.0)
    min_size: int = param(256, "coarsest pyramid level's long side at least this (0 = no pyramid, "
                          "optimise at full size only)", min=0, max=imaging.MAX_SIDE)
    precision: str = param("auto", "bf16 autocast where the CPU supports it, or force one",
                           choices=("auto", "bf16", "fp32"))
    pooling: str = param("max", "VGG pooling", choices=("max", "avg"))
    weights: str = param("hed", "feature network: 'hed' (embedded VGG16) or a torchvision "
                         "VGG16/VGG19 .pth path or URL", metavar="hed|PATH|URL")
    seed: int = param(0, "random seed (noise init, reproducible output)", min=0)


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


def style_targets(vgg, styles: Sequence[torch.Tensor], weights: Sequence[float],
                  layers: Sequence[str], area: float, scale: float, bf16: bool,
                  wrap: bool = False) -> dict[str, torch.Tensor]:
    """Blended Gram targets: each style resized so its area is ``area * scale**2``."""
    total = sum(weights)
    grams: dict[str, torch.Tensor] = {}
    for style, w in zip(styles, weights):
        if w == 0:
            continue
        h, w_ = style.shape[-2:]
        k = (area * scale * scale / (h * w_)) ** 0.5
        size = (max(16, round(h * k)), max(16, round(w_ * k)))
        s = imaging.resize_tensor(style, size, wrap=wrap)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            feats = vgg(s, list(layers))
        for name in layers:
            g = gram_matrix(feats[name]) * (w / total)
            grams[name] = grams[name] + g if name in grams else g
    return grams


def style_term(grams: dict[str, torch.Tensor], layer_weights: dict[str, float]) -> Objective:
    norm = sum(layer_weights.values()) or 1.0
    obj = Objective()
    for name, lw in layer_weights.items():
        obj = obj + Objective.term("style", lambda f, _, n=name: gram_loss(f[n], grams[n]),
                                   [name], lw / norm)
    return obj


class GatysProblem:
    """One Gatys transfer set up for the engine: pyramid sizes, targets per level, init.

    Kept apart from the optimization loop so that benchmarks and other methods can
    evaluate the exact same objective (e.g. in fp32 at the final size).
    """

    def __init__(self, content: torch.Tensor, styles: list[torch.Tensor],
                 style_weights: list[float], p: GatysParams):
        self.p = p
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
        self.sw = p.style_weight * STYLE_BALANCE * (s / max(1.0 - s, 1e-3))

    def objective(self, size: tuple[int, int], bf16: bool) -> Objective:
        """The loss at one pyramid level: targets computed at that size."""
        vgg, clw = self.vgg, self.content_lw
        c = imaging.resize_tensor(self.target_content, size)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            cf = vgg(c, list(clw))
        cf = {k: v.float() for k, v in cf.items()}
        grams = style_targets(vgg, self.styles, self.style_weights, list(self.style_lw),
                              size[0] * size[1], self.p.style_scale, bf16)
        norm = sum(clw.values()) or 1.0
        obj = Objective()
        for name, lw in clw.items():
            obj = obj + Objective.term("content", lambda f, _, n=name: content_loss(f[n], cf[n]),
                                       [name], self.cw * lw / norm)
        obj = obj + self.sw * style_term(grams, self.style_lw)
        if self.p.tv_weight:
            obj = obj + Objective.term("tv", lambda _, img: total_variation(img), (),
                                       self.p.tv_weight)
        return obj

    def init(self, size: tuple[int, int]) -> torch.Tensor:
        p = self.p
        start = self.target_content if p.init == "content" else self.content
        out = initial_image(p.init, start, size, p.seed)
        return imaging.gray_rgb(out) if p.preserve_color == "luminance" else out

    def finish(self, out: torch.Tensor) -> torch.Tensor:
        if self.p.preserve_color == "luminance":
            return imaging.combine_luminance(out, self.content)
        return out

    def solve(self, callbacks: Sequence[Callable[[Progress], None]] = ()) -> torch.Tensor:
        p = self.p
        engine = Engine(self.vgg, p.optimizer, p.lr or None, p.precision, callbacks,
                        line_search=None if p.line_search == "none" else p.line_search)
        torch.manual_seed(p.seed)
        out = run_pyramid(engine, self.sizes, self.iterations,
                          lambda size: self.objective(size, engine.bf16), self.init)
        return self.finish(out)


def stylize_by_optimization(content: torch.Tensor, styles: list[torch.Tensor],
                            style_weights: list[float], p: GatysParams,
                            callbacks: Sequence[Callable[[Progress], None]] = ()) -> torch.Tensor:
    """Gatys transfer on tensors (content at its final size, styles at any size)."""
    return GatysProblem(content, styles, style_weights, p).solve(callbacks)


@register
class Gatys(Method):
    name = "gatys"
    family = "image-optimization"
    task = "transfer"
    summary = "Gatys et al. 2016: optimise pixels to match VGG content features and style Grams"
    Params = GatysParams

    def run(self, inputs: Inputs, params: GatysParams, callbacks=()) -> torch.Tensor:
        if inputs.content is None:
            raise RestyleError("gatys needs a content image")
        if not inputs.styles:
            raise RestyleError("gatys needs at least one style image")
        w, h = imaging.fit_size(*inputs.content.size, params.size)
        content = imaging.to_tensor(imaging.resize(inputs.content, (w, h)))
        styles = [imaging.to_tensor(s) for s in inputs.styles]
        return stylize_by_optimization(content, styles, inputs.style_weights, params, callbacks)
