"""Trained style networks (Johnson et al. 2016; Dumoulin et al. 2017): one forward pass.

The styles are names inside a trained model (``restyle models`` lists them), not
images: ``restyle transfer photo.jpg --model painters --style starry_night:0.3,udnie:0.7``.
Several styles are blended by mixing the network's conditional-instance-norm parameters
with the weights (normalised to sum to 1).

``strength`` mixes the output with the photo pixel by pixel (a style network has no
feature space to blend in, unlike AdaIN's alpha); ``preserve_color`` keeps the photo's
colours (luminance: the stylised Y with the photo's chroma; histogram: the output recoloured
to the photo's palette), before the mix.

``runtime="onnx"`` runs the model's ONNX export (see :mod:`restyle.nets.onnx_export`)
with onnxruntime instead of PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .. import imaging, stroke
from ..errors import RestyleError
from ..nets.onnx_export import onnx_session
from ..nets.stylenet import get_stylenet, installed_models
from ..optimize import resolve_precision
from ..params import param, precision_param, size_param
from . import Inputs, Method, Takes, register

#: The model ``--model`` defaults to when it is installed.
DEFAULT_MODEL = "painters"


@dataclass
class NetworkParams:
    model: str = param("", "style network: a name from `restyle models` or a .safetensors "
                       f"path (default: {DEFAULT_MODEL})", metavar="NAME|PATH", kind="path")
    size: int = size_param(512)
    strength: float = param(1.0, "style strength: the stylised image mixed with the photo "
                            "(0 = the photo, 1 = the network's output)", min=0.0, max=1.0)
    preserve_color: str = param("none", "keep the photo's colours: 'luminance' takes the "
                                "stylised luminance with the photo's chroma, 'histogram' "
                                "recolours the output to the photo's palette",
                                choices=("none", "luminance", "histogram"))
    precision: str = precision_param()
    stroke_size: float = stroke.size_param("the network")
    runtime: str = param("torch", "run with PyTorch or with onnxruntime (ONNX export)",
                         choices=("torch", "onnx"))


def painting_style(styles: list[str], painting: str) -> str | None:
    """The style among ``styles`` trained on the painting file ``painting`` (matched by its
    file name without extension, as ``restyle train style`` names styles), or None."""
    stem = Path(painting).stem
    return stem if stem in styles else None


def style_for_painting(model: str, painting: str) -> str:
    """The style of ``model`` trained on the painting file ``painting`` (see
    :func:`painting_style`)."""
    name = painting_style(get_stylenet(model).styles, painting)
    if name is None:
        raise RestyleError(f"the {model} model has no style {Path(painting).stem!r}")
    return name


def default_model() -> str:
    models = installed_models()
    if DEFAULT_MODEL in models:
        return DEFAULT_MODEL
    if not models:
        raise RestyleError("no style network is installed; train one with `restyle train style "
                           "STYLE.jpg ... --out runs/NAME --export models/NAME.safetensors`")
    return next(iter(models))


@register
class Network(Method):
    name = "network"
    family = "model-optimization"
    task = "transfer"
    takes = Takes(styles="names")
    summary = "trained style network (Johnson/Ulyanov; Dumoulin multi-style with blending)"
    Params = NetworkParams

    def run(self, inputs: Inputs, params: NetworkParams, callbacks=()) -> torch.Tensor:
        if inputs.content is None:
            raise RestyleError("the network method needs a content image")
        net = get_stylenet(params.model or default_model())
        names = inputs.style_names or []
        if not names:
            raise RestyleError(f"name the style(s) to use: one of {', '.join(net.styles)}")
        weights = {}
        for name, w in zip(names, inputs.style_weights):
            # a style's name, or a painting's file for the style trained on it
            key = name if name in net.styles else painting_style(net.styles, name) or name
            weights[key] = weights.get(key, 0.0) + w
        out_size = imaging.fit_size(*inputs.content.size, params.size)
        photo = imaging.to_tensor(imaging.resize(inputs.content, out_size))
        side = stroke.working_side(params.stroke_size, max(out_size))
        work = photo if side == max(out_size) else imaging.to_tensor(
            imaging.resize(inputs.content, imaging.fit_size(*out_size, side)))
        if params.runtime == "onnx":
            out = onnx_session(net).run(work, net.mix_vector(weights))
        else:
            out = net.stylize(work, weights, resolve_precision(params.precision))
        out = stroke.resample_to(out.float(), photo)  # back from the working size
        if params.preserve_color == "luminance":
            out = imaging.combine_luminance(out, photo)
        elif params.preserve_color == "histogram":
            out = imaging.color_transfer(out.float(), photo)
        return torch.lerp(photo, out.float(), params.strength).clamp(0, 1)
