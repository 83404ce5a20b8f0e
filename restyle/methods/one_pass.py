"""What the one-pass methods (AdaIN, WCT, style-swap) share; not a method itself.

Each of them: loads the content at the output size and the styles at ``style_size``,
optionally prepares colour preservation (as Gatys does: luminance-only transfer, or
the styles recoloured to the content's palette), encodes with the embedded VGG16
(bfloat16 autocast where the CPU supports it), transforms the features, blends with
the content's features by ``alpha`` and decodes with a trained
:class:`~restyle.nets.decoder.Decoder`.

Several styles are interpolated in feature space, as Huang & Belongie (2017, sec. 7.2)
and Li et al. (2017) do: ``t = sum_k w_k T(f_c, f_s_k)`` with the weights normalised
to sum to 1 (styles of weight 0 are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import imaging
from ..errors import RestyleError
from ..nets.decoder import Decoder
from ..params import param
from . import Inputs


@dataclass
class OnePassParams:
    """Parameters every one-pass method has."""

    size: int = param(512, "long side of the output in pixels", min=16, max=imaging.MAX_SIDE)
    alpha: float = param(1.0, "style strength: 0 decodes the photo's own features, 1 the "
                         "fully transformed ones", min=0.0, max=1.0)
    style_size: int = param(512, "long side the style image(s) are resized to before encoding "
                            "(the size of the style's strokes)", min=16, max=imaging.MAX_SIDE)
    preserve_color: str = param("none", "keep the photo's colours: 'luminance' transfers only "
                                "luminance, 'histogram' recolours the style first",
                                choices=("none", "luminance", "histogram"))
    precision: str = param("auto", "bf16 autocast where the CPU supports it, or force one",
                           choices=("auto", "bf16", "fp32"))


@dataclass
class Prepared:
    """The images a one-pass method works on."""

    content: torch.Tensor  # (1, 3, H, W) what is encoded (grey for luminance transfer)
    photo: torch.Tensor  # (1, 3, H, W) the content photo at the output size
    styles: list[torch.Tensor]  # styles with a non-zero weight, resized (and recoloured)
    weights: list[float]  # their weights, summing to 1
    preserve_color: str

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.photo.shape[-2:])

    def finish(self, out: torch.Tensor) -> torch.Tensor:
        """The decoded image; for luminance transfer with the photo's chroma (YIQ)."""
        if self.preserve_color == "luminance":
            return imaging.combine_luminance(out, self.photo)
        return out.clamp(0, 1)


def prepare(inputs: Inputs, p: OnePassParams, method: str) -> Prepared:
    if inputs.content is None:
        raise RestyleError(f"{method} needs a content image")
    if not inputs.styles:
        raise RestyleError(f"{method} needs at least one style image")
    photo = imaging.to_tensor(imaging.resize(inputs.content,
                                             imaging.fit_size(*inputs.content.size, p.size)))
    total = sum(inputs.style_weights)
    styles, weights = [], []
    for img, w in zip(inputs.styles, inputs.style_weights):
        if w > 0:
            styles.append(imaging.to_tensor(imaging.resize(img, imaging.fit_size(*img.size,
                                                                                 p.style_size))))
            weights.append(w / total)
    content = photo
    if p.preserve_color == "luminance":
        styles = [imaging.match_luminance(s, photo) for s in styles]
        content = imaging.gray_rgb(photo)
    elif p.preserve_color == "histogram":
        styles = [imaging.color_transfer(s, photo) for s in styles]
    return Prepared(content, photo, styles, weights, p.preserve_color)


@torch.no_grad()
def encode(vgg, image: torch.Tensor, layers: list[str], bf16: bool) -> dict[str, torch.Tensor]:
    """VGG features of ``image`` at ``layers``, as float32 (computed under bf16 autocast)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = vgg(image, layers)
    return {k: v.float() for k, v in feats.items()}


@torch.no_grad()
def decode(decoder: Decoder, feat: torch.Tensor, size: tuple[int, int], bf16: bool
           ) -> torch.Tensor:
    """The decoder's image of ``feat`` at exactly ``size`` (h, w), float32 in [0, 1]."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return decoder.decode(feat, size)
