"""AdaIN (Huang & Belongie 2017): arbitrary style in one pass.

The content and style images are encoded to VGG16 ``relu4_1``; the content
features take the style's channel-wise means and standard deviations
(:func:`~restyle.transforms.adain`), are blended with the content features by
``strength`` (the paper's alpha) and decoded by the AdaIN-trained ``relu4_1`` decoder:

.. math::
    t = \\alpha \\, \\mathrm{AdaIN}(f(c), \\mu_s, \\sigma_s) + (1 - \\alpha) f(c), \\qquad
    \\text{output} = g(t)

Several styles: the paper interpolates the AdaIN-ed features,
:math:`\\sum_k w_k \\mathrm{AdaIN}(f(c), \\mu_k, \\sigma_k)`. AdaIN is affine in the
style statistics (:math:`\\sigma \\hat f + \\mu`), so with weights summing to 1 this is
exactly one AdaIN with the mixed statistics :math:`\\mu = \\sum_k w_k \\mu_k`,
:math:`\\sigma = \\sum_k w_k \\sigma_k`. restyle mixes the statistics: the same picture,
one transform instead of K, and per-style statistics (2C numbers) are what a cache
or a future region mask needs to hold.

``adain-lite`` is the same method on a distilled encoder and decoder
(:mod:`restyle.nets.lite`, about a tenth of the full networks' work): the fast path for
any style image at full resolution; ``adain`` with VGG16 stays the quality option.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..backbone import get_vgg
from ..nets.decoder import get_decoder
from ..nets.lite import get_lite
from ..optimize import resolve_precision
from ..params import param
from ..transforms import adain, channel_stats
from . import Inputs, Method, register
from .one_pass import OnePassParams, auto_tile, encode_style, prepare, stylize_level

LEVEL = "relu4_1"


@dataclass
class AdaINParams(OnePassParams):
    decoder: str = param("", "relu4_1 decoder file (default: models/decoder_relu4_1.safetensors "
                         "of restyle, or in $RESTYLE_MODELS)", metavar="PATH",
                         kind="path")


@register
class AdaIN(Method):
    name = "adain"
    family = "model-optimization"
    task = "transfer"
    summary = "Huang & Belongie 2017: match relu4_1 channel means/stds, decode (one pass)"
    Params = AdaINParams

    def networks(self, params) -> tuple:
        """(encoder, decoder): the embedded VGG16 and the packaged relu4_1 decoder."""
        return get_vgg(), get_decoder(LEVEL, params.decoder)

    def run(self, inputs: Inputs, params: AdaINParams, callbacks=()) -> torch.Tensor:
        vgg, dec = self.networks(params)
        prep = prepare(inputs, params, self.name)
        bf16 = resolve_precision(params.precision)
        style_stats = [channel_stats(encode_style(vgg, s, [LEVEL], bf16)[LEVEL])
                       for s in prep.styles]
        if prep.masks is None:  # one transform with the mixed statistics (module docstring)
            mean = sum(w * m for w, (m, _) in zip(prep.weights, style_stats))
            std = sum(w * s for w, (_, s) in zip(prep.weights, style_stats))
            style_stats, weights = [(mean, std)], [1.0]
        else:
            weights = prep.weights

        def transform(sm, ss):
            return lambda fc, st: adain(fc, style_mean=sm, style_std=ss,
                                        content_mean=st.mean().float().view(1, -1, 1, 1),
                                        content_std=st.std().float().view(1, -1, 1, 1))

        out = stylize_level(vgg, dec, prep.content, LEVEL,
                            [transform(m, s) for m, s in style_stats], weights, prep.masks,
                            params.strength, bf16, auto_tile(params, prep.size),
                            full_stats=False)
        return prep.finish(out, params)


@dataclass
class AdaINLiteParams(OnePassParams):
    model: str = param("", "distilled AdaIN model file (default: models/adain_lite.safetensors "
                       "of restyle, or in $RESTYLE_MODELS)", metavar="PATH",
                         kind="path")


@register
class AdaINLite(AdaIN):
    name = "adain-lite"
    summary = ("AdaIN on a distilled encoder/decoder (Wang et al. 2020): any style in one "
               "fast pass at full resolution")
    Params = AdaINLiteParams

    def networks(self, params) -> tuple:
        model = get_lite(params.model)
        return model.encoder, model.decoder
