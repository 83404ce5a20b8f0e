"""Style-swap (Chen & Schmidt 2016, "Fast patch-based style transfer of arbitrary style").

The content's VGG16 ``relu3_1`` features have each 3x3 patch replaced by the style
patch with the highest normalised cross-correlation
(:func:`~restyle.transforms.style_swap`); the swapped features, blended with the
content's by ``strength`` (alpha), are turned into an image either by the ``relu3_1`` decoder
(one pass) or, with ``invert="optimize"``, as in the paper's slower inverse: by
optimising the pixels on the core engine until their features match,

.. math::
    x^* = \\arg\\min_x \\frac{\\lVert f_{3,1}(x) - t \\rVert^2}{\\lVert t \\rVert^2}
    \\qquad (\\text{L-BFGS from the content photo}).

The optimization inverse needs no trained weights. Several styles are interpolated
in feature space, :math:`t = \\sum_k w_k \\mathrm{SS}(f(c), f(s_k))`, as for AdaIN and
WCT (pooling the patches of all styles would ignore the weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..backbone import get_vgg
from ..errors import RestyleError
from ..losses import content_loss
from ..nets.decoder import get_decoder
from ..optimize import Engine, Objective, resolve_precision, run_pyramid
from ..params import param
from ..transforms import blend, style_swap
from . import Inputs, Method, register
from .one_pass import OnePassParams, auto_tile, encode, encode_style, prepare, stylize_level

LEVEL = "relu3_1"


@dataclass
class StyleSwapParams(OnePassParams):
    patch_size: int = param(3, "side of the swapped feature patches (relu3_1 positions)",
                            min=1, max=15)
    invert: str = param("decoder", "features to image: the trained relu3_1 decoder (one pass) "
                        "or pixel optimization (slow, no weights needed)",
                        choices=("decoder", "optimize"))
    iterations: int = param(100, "L-BFGS iterations of --invert optimize", min=1, max=100000)
    decoder: str = param("", "relu3_1 decoder file (default: models/decoder_relu3_1.safetensors "
                         "of restyle, or in $RESTYLE_MODELS)", metavar="PATH",
                         kind="path")


def invert_by_optimization(vgg, target: torch.Tensor, init: torch.Tensor, iterations: int,
                           precision: str, callbacks=()) -> torch.Tensor:
    """Pixels whose ``relu3_1`` features match ``target`` (relative MSE, L-BFGS from ``init``)."""
    engine = Engine(vgg, "lbfgs", None, precision, callbacks)
    objective = Objective.term("content", lambda f, _: content_loss(f[LEVEL], target), [LEVEL])
    size = tuple(init.shape[-2:])
    return run_pyramid(engine, [size], [iterations], lambda _: objective, lambda _: init)


@register
class StyleSwap(Method):
    name = "style-swap"
    family = "model-optimization"
    task = "transfer"
    summary = "Chen & Schmidt 2016: swap relu3_1 patches for the best-matching style patches"
    Params = StyleSwapParams

    def run(self, inputs: Inputs, params: StyleSwapParams, callbacks=()) -> torch.Tensor:
        dec = get_decoder(LEVEL, params.decoder) if params.invert == "decoder" else None
        prep = prepare(inputs, params, self.name)
        bf16 = resolve_precision(params.precision)
        vgg = get_vgg()
        style_feats = [encode_style(vgg, s, [LEVEL], bf16)[LEVEL] for s in prep.styles]

        def transform(fs):
            def swap(fc, _stats):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    return style_swap(fc, fs, params.patch_size).float()
            return swap

        transforms = [transform(fs) for fs in style_feats]
        if dec is not None:
            out = stylize_level(vgg, dec, prep.content, LEVEL, transforms, prep.weights,
                                prep.masks, params.strength, bf16, auto_tile(params, prep.size),
                                needs_stats=False)
        else:  # the paper's inverse by optimization: whole image, no tiles
            if prep.masks is not None:
                raise RestyleError("--masks needs the decoder inverse (--invert decoder)")
            fc = encode(vgg, prep.content, [LEVEL], bf16)[LEVEL]
            t = blend(fc, sum(w * fn(fc, None) for w, fn in zip(prep.weights, transforms)),
                      params.strength)
            out = invert_by_optimization(vgg, t, prep.content, params.iterations,
                                         params.precision, callbacks)
        return prep.finish(out, params)
