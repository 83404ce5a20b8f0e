"""MGAN (Li & Wand 2016): a per-painting decoder trained against a patch discriminator.

One forward pass through the distilled lite encoder and the painting's own decoder
(:mod:`restyle.nets.mgan`). The style image names the painting: the installed model
trained on it is found by its thumbnail, or ``--model FILE`` names one (and refuses a
style image it was not trained on). Train one with ``restyle train mgan PAINTING.jpg``.

``strength`` mixes the output with the photo pixel by pixel, as for the style networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import imaging
from ..errors import RestyleError
from ..nets.mgan import mgan_for
from ..optimize import resolve_precision
from ..params import param, precision_param, size_param
from . import Inputs, Method, register


@dataclass
class MGANParams:
    model: str = param("", "MGAN model: a .safetensors file or the name of an installed one "
                       "(default: the installed model trained on the style image)",
                       metavar="NAME|PATH", kind="path")
    size: int = size_param(512)
    strength: float = param(1.0, "style strength: the output mixed with the photo "
                            "(0 = the photo, 1 = the network's output)", min=0.0, max=1.0)
    precision: str = precision_param()


@register
class MGANMethod(Method):
    name = "mgan"
    family = "model-optimization"
    task = "transfer"
    summary = "MGAN: per-painting decoder trained against a patch discriminator (Li & Wand)"
    Params = MGANParams

    def run(self, inputs: Inputs, params: MGANParams, callbacks=()) -> torch.Tensor:
        if inputs.content is None:
            raise RestyleError("the mgan method needs a content image")
        if len(inputs.styles) != 1:
            raise RestyleError("an MGAN model paints one painting: give one style image")
        net = mgan_for(inputs.styles[0], params.model)
        photo = imaging.to_tensor(imaging.resize(inputs.content,
                                                 imaging.fit_size(*inputs.content.size,
                                                                  params.size)))
        out = net.stylize(photo, resolve_precision(params.precision))
        return torch.lerp(photo, out, params.strength).clamp(0, 1)
