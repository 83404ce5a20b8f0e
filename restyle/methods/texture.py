"""Gatys, Ecker & Bethge (2015): texture synthesis with Gram matrices of VGG features.

Starting from noise, an image is optimised until its Gram matrices (or another
style statistic, ``style_loss``) match the exemplar's on several layers.
``tileable`` uses circular padding in the network and a periodic pyramid, so the
result tiles without seams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .. import imaging
from ..backbone import get_vgg
from ..errors import RestyleError
from ..optimize import Engine, pyramid_sizes, run_pyramid
from ..params import (param, parse_layer_weights, precision_param, seed_param,
                      weights_param)
from ..style_losses import STYLE_LOSS_NAMES, get_style_loss, style_targets, style_term
from . import Inputs, Method, Takes, register
from .gatys import level_iterations


@dataclass
class TextureParams:
    size: str = param("512x512", "output size as WIDTHxHEIGHT (or one number for a square)",
                      metavar="WxH", check=lambda v: parse_size(v), kind="canvas")
    iterations: int = param(150, "optimizer iterations at the final size (each coarser "
                            "pyramid level gets twice as many)", min=0, max=100000)
    style_layers: str = param("relu1_1,pool1,pool2,pool3,pool4",
                              "layers whose Gram matrices are matched (Gatys 2015 used "
                              "conv1_1 and pool1-pool4)", metavar="LAYERS")
    scale: float = param(1.0, "size of the exemplar's features in the output (0.5 finer, "
                         "2 larger)", min=0.05, max=8.0)
    tileable: bool = param(False, "make the texture tile seamlessly")
    optimizer: str = param("lbfgs", "optimizer", choices=("lbfgs", "adam"))
    line_search: str = param("none", "L-BFGS line search", choices=("none", "strong_wolfe"))
    lr: float = param(0.0, "learning rate (0 = the optimizer's default)", min=0.0)
    min_size: int = param(128, "coarsest pyramid level's long side at least this (0 = no pyramid)",
                          min=0, max=imaging.MAX_SIDE)
    precision: str = precision_param("bf16 autocast where supported, or force one")
    pooling: str = param("avg", "VGG pooling (Gatys 2015 used average pooling)",
                         choices=("max", "avg"))
    weights: str = weights_param("feature network: 'hed' or a torchvision VGG .pth path or URL")
    style_loss: str = param("gram", "statistic matched: gram (Gatys 2015), meanstd, mmd-linear, "
                            "mmd-poly, mmd-gauss, w2 (mean and covariance) or sliced (sliced "
                            "Wasserstein, Heitz et al. 2021)", choices=STYLE_LOSS_NAMES)
    seed: int = seed_param("random seed of the starting noise and random projections")


def parse_size(spec: str) -> tuple[int, int]:
    """'640x480' -> (640, 480); '512' -> (512, 512)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(spec))
    if not m:
        raise RestyleError(f"--size must look like 512x384 or 512, not {spec!r}")
    w = int(m.group(1))
    h = int(m.group(2) or w)
    if not (16 <= w <= imaging.MAX_SIDE and 16 <= h <= imaging.MAX_SIDE):
        raise RestyleError(f"--size sides must be between 16 and {imaging.MAX_SIDE} pixels")
    return w, h


@register
class Texture(Method):
    name = "texture"
    family = "image-optimization"
    task = "texture"
    takes = Takes(content="none", style_word="exemplar")
    summary = "Gatys et al. 2015: texture synthesis by matching Gram matrices from noise"
    Params = TextureParams

    def run(self, inputs: Inputs, p: TextureParams, callbacks=()) -> torch.Tensor:
        if not inputs.styles:
            raise RestyleError("texture synthesis needs an exemplar image")
        width, height = parse_size(p.size)
        layer_w = parse_layer_weights(p.style_layers, "--style-layers")
        vgg = get_vgg(p.weights, pooling=p.pooling,
                      padding="circular" if p.tileable else "zeros")
        vgg.check_layers(list(layer_w))
        engine = Engine.from_params(vgg, p, callbacks)
        exemplars = [imaging.to_tensor(s) for s in inputs.styles]
        # Texture elements keep their size in pixels (times ``scale``): a bigger canvas
        # shows more of the texture, not bigger elements.
        ex_area = float(exemplars[0].shape[-2] * exemplars[0].shape[-1])

        # Tileable: every pyramid level must divide by 32 so pooled features stay periodic.
        if p.tileable:
            work = (max(32, round(height / 32) * 32), max(32, round(width / 32) * 32))
        else:
            work = (height, width)
        sizes = pyramid_sizes(*work, min_side=p.min_size) if p.min_size else [work]
        if p.tileable:
            sizes = [(max(32, round(h / 32) * 32), max(32, round(w / 32) * 32)) for h, w in sizes]
        iters = level_iterations(p.iterations, len(sizes))
        top = sizes[-1]

        loss = get_style_loss(p.style_loss, p.seed)

        def make_objective(size):
            k = size[0] / top[0]  # the exemplar shrinks with the level, as the canvas does
            targets = style_targets(loss, vgg, exemplars, inputs.style_weights, list(layer_w),
                                    ex_area * k * k, p.scale, engine.bf16)
            return loss.balance * style_term(loss, targets, layer_w)

        def init(size):
            g = torch.Generator().manual_seed(p.seed)
            mean = torch.stack([e.mean((2, 3), keepdim=True) for e in exemplars]).mean(0)
            return (mean + 0.25 * (torch.rand(1, 3, *size, generator=g) - 0.5)).clamp(0, 1)

        torch.manual_seed(p.seed)
        out = run_pyramid(engine, sizes, iters, make_objective, init, wrap=p.tileable)
        if tuple(out.shape[-2:]) != (height, width):
            out = imaging.resize_tensor(out, (height, width), wrap=p.tileable)
        return out
