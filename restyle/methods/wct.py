"""WCT (Li et al. 2017, "Universal style transfer via feature transforms").

Coarse to fine: at each level ``relu5_1 ... relu1_1`` the current image is encoded,
its features are whitened and coloured with the style's covariance
(:func:`~restyle.transforms.wct`), blended with its own features by ``strength`` (alpha), and
decoded by that level's decoder; the result is the next level's input:

.. math::
    x_6 = c, \\qquad
    x_l = g_l\\big(\\alpha \\, \\mathrm{WCT}(f_l(x_{l+1}), f_l(s))
              + (1 - \\alpha) f_l(x_{l+1})\\big)

The deep levels transfer the large structures of the style, the shallow ones its
fine texture and colour. ``levels`` picks a subset (e.g. ``4,3`` when only those
decoders are trained); they always run coarse to fine. Several styles are
interpolated in feature space, :math:`\\sum_k w_k \\mathrm{WCT}(f, f(s_k))` (Li et al.,
sec. 4). As with AdaIN this equals one transform with mixed statistics (the colouring
is linear in :math:`\\Sigma_s^{1/2}` and :math:`m_s`), but the feature mix keeps
:func:`~restyle.transforms.wct` a function of feature maps; it only repeats the
content's whitening once per style.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..backbone import get_vgg
from ..errors import RestyleError
from ..nets.decoder import LEVELS, default_decoder_path, get_decoder
from ..optimize import resolve_precision
from ..params import param
from ..transforms import wct
from . import Inputs, Method, register
from .one_pass import OnePassParams, auto_tile, encode_style, prepare, stylize_level


@dataclass
class WCTParams(OnePassParams):
    strength: float = param(0.6, "style strength at every level (the paper's alpha): 0 decodes "
                            "the image's own features, 1 the whitened-coloured ones",
                            min=0.0, max=1.0, aliases=("alpha",))
    levels: str = param("4,3,2,1", "relu{k}_1 levels to transform, coarse to fine "
                        "(a subset such as 4,3 uses fewer decoders; 5,4,3,2,1 as in the paper "
                        "adds the relu5_1 level: bolder, but restyle's relu5_1 decoder is "
                        "soft and the photo's structure suffers, so it is not the default)",
                        metavar="4,3,2,1")
    decoder_dir: str = param("", "folder holding decoder_relu{k}_1.safetensors (default: "
                             "restyle's models/, or $RESTYLE_MODELS)", metavar="DIR",
                             kind="path")


def parse_levels(spec: str) -> list[str]:
    """'5,4,3' -> ['relu5_1', 'relu4_1', 'relu3_1'] (sorted coarse to fine, no repeats)."""
    items = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not items or any(s not in "12345" or len(s) != 1 for s in items):
        raise RestyleError(f"--levels takes numbers 1-5 separated by commas, e.g. 5,4,3,2,1; "
                           f"not {spec!r}")
    return [f"relu{k}_1" for k in sorted(set(map(int, items)), reverse=True)]


@register
class WCT(Method):
    name = "wct"
    family = "model-optimization"
    task = "transfer"
    summary = ("Li et al. 2017: whitening-colouring transforms coarse to fine (relu4_1..relu1_1 "
               "by default), one decoder each")
    Params = WCTParams

    def run(self, inputs: Inputs, params: WCTParams, callbacks=()) -> torch.Tensor:
        levels = parse_levels(params.levels)
        present = [lv[4] for lv in reversed(LEVELS)
                   if default_decoder_path(lv, params.decoder_dir).exists()]
        hint = (f"or pick --levels among the decoders present ({','.join(present)})" if present
                else "")
        decoders = {lv: get_decoder(lv, default_decoder_path(lv, params.decoder_dir), hint)
                    for lv in levels}
        prep = prepare(inputs, params, self.name)
        bf16 = resolve_precision(params.precision)
        vgg = get_vgg()
        style_feats = [encode_style(vgg, s, levels, bf16) for s in prep.styles]
        tile = auto_tile(params, prep.size)

        def transform(fs):
            return lambda fc, st: wct(fc, fs, content_mean=st.mean(), content_cov=st.cov())

        image = prep.content
        for lv in levels:
            image = stylize_level(vgg, decoders[lv], image, lv,
                                  [transform(fs[lv]) for fs in style_feats], prep.weights,
                                  prep.masks, params.strength, bf16, tile)
        return prep.finish(image, params)
