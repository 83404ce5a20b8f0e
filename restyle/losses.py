"""Loss terms: small pure functions of feature maps (N, C, H, W) or images.

Every distance here is *relative*: divided by the size of its target, so a
value of 0.1 means "10 % off" whatever the image, layer or network. That is
what lets one set of weights (and one ``strength`` knob) behave the same
across images and layers.
"""

from __future__ import annotations

import torch


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix G = F F^T / (H W) per image: (N, C, H, W) -> (N, C, C), returned in float32.

    Gatys et al. (2015): the channel co-activation statistics, which discard
    where things are and keep what textures look like.
    """
    n, c, h, w = features.shape
    # (N, HW, C) is a free view of channels-last maps, so no copy is made; bfloat16
    # features are multiplied in bfloat16 (fp32 accumulation) on the CPU's matrix units.
    f = features.permute(0, 2, 3, 1).reshape(n, h * w, c)
    if f.dtype not in (torch.bfloat16, torch.float16):
        f = f.float()
    return torch.bmm(f.transpose(1, 2), f).float() / (h * w)


def relative_mse(x: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """||x - t||^2 / ||t||^2: a scale-free squared distance (0 when equal)."""
    x, target = x.float(), target.float()
    return (x - target).pow(2).mean() / (target.pow(2).mean() + eps)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Feature reconstruction loss (Gatys et al. 2016, eq. 1), relative to the target."""
    return relative_mse(features, target)


def gram_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Style loss on one layer (Gatys et al. 2016, eq. 4), relative to the target Gram."""
    return relative_mse(gram_matrix(features), target_gram)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (a smoothness prior)."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()
