"""Deep Dream (Mordvintsev, Olah & Tyka, 2015): amplify what a layer sees in a photo.

Gradient *ascent* on the pixels raises the activations of chosen layers (or of
chosen channels of a layer) of the embedded VGG16, so the patterns those units
respond to appear in the image. The recipe of the original notebook:

* **octaves**: the photo is processed from a small copy up to the full size; the
  detail added at one octave (result minus the photo at that size) is upsampled
  and carried into the next, so large structures form first and fine ones last;
* **jitter**: before each step the image is rolled by a random offset (and rolled
  back after), which averages out the network's grid artifacts;
* **normalised steps**: the gradient is divided by its mean magnitude, so
  ``step_size`` is the average change of a pixel per step, in 8-bit levels;
* **clipping**: after each step the pixels are kept in the valid colour range.

The objective of a layer is its mean squared activation (the "L2" objective of the
original); a layer with a channel list (``relu4_3:12,87``) counts only those
channels. Each layer's term is divided by its value on the input photo, so several
layers contribute equally whatever their activation scales.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .. import imaging
from ..backbone import CHANNELS, get_vgg
from ..errors import RestyleError
from ..optimize import Progress, Stop, resolve_precision
from ..params import param, precision_param, seed_param, size_param, weights_param
from . import Inputs, Method, Takes, register

#: smallest side an octave may have (smaller copies are skipped)
MIN_OCTAVE_SIDE = 32


@dataclass
class DreamParams:
    size: int = size_param(512, min=32)
    layers: str = param("relu4_3", "layers to amplify, optionally with channels: relu4_3, "
                        "relu3_3,relu4_3 or relu4_3:12,87 (channels 12 and 87 of relu4_3)",
                        metavar="LAYER[:CH,...],...")
    octaves: int = param(4, "number of scales, from small to full size (1 = full size only)",
                         min=1, max=12)
    octave_scale: float = param(1.4, "size ratio between successive octaves", min=1.05,
                                max=4.0)
    iterations: int = param(10, "gradient-ascent steps per octave", min=0, max=10000)
    step_size: float = param(1.5, "average change of a pixel per step, in 8-bit levels "
                             "(0-255)", min=0.0, max=255.0)
    jitter: int = param(32, "largest random shift in pixels before each step (0 = none)",
                        min=0, max=4096)
    pooling: str = param("max", "VGG pooling", choices=("max", "avg"))
    precision: str = precision_param()
    weights: str = weights_param()
    seed: int = seed_param("random seed of the jitter")


def channel_count(layer: str) -> int:
    """Channels of a VGG layer from its block number (conv3_1 -> 256)."""
    m = re.match(r"^(?:conv|relu|pool)(\d)", layer)
    return CHANNELS[int(m.group(1)) - 1] if m else 0


def parse_dream_layers(spec: str) -> dict[str, list[int] | None]:
    """'relu3_3,relu4_3:12,87' -> {'relu3_3': None, 'relu4_3': [12, 87]}.

    A layer name starts an entry; ``name:CH`` starts one restricted to channels,
    and bare numbers after it add channels to that entry. ``None`` means all channels.
    """
    out: dict[str, list[int] | None] = {}
    current: str | None = None
    for token in (t.strip() for t in str(spec).split(",")):
        if not token:
            continue
        name, colon, first = token.partition(":")
        name = name.strip()
        if not colon and name.isdigit():
            if current is None or out[current] is None:
                raise RestyleError(f"--layers: channel {name} must follow a layer with "
                                   "channels, e.g. relu4_3:12,87")
            out[current].append(int(name))
            continue
        if not re.fullmatch(r"[a-z]+\d+(_\d+)?", name):
            raise RestyleError(f"--layers: {token!r} is not a layer name; write e.g. relu4_3 "
                               "or relu4_3:12,87")
        if colon:
            if not first.strip().isdigit():
                raise RestyleError(f"--layers: {token!r}: channels are whole numbers, "
                                   "e.g. relu4_3:12,87")
            out[name] = sorted(set((out.get(name) or []) + [int(first)]))
        else:
            out[name] = None
        current = name
    if not out:
        raise RestyleError("--layers: give at least one layer, e.g. relu4_3")
    return {k: (sorted(set(v)) if v is not None else None) for k, v in out.items()}


def octave_sizes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """Sizes (h, w) from the smallest octave to the full size; none below MIN_OCTAVE_SIDE."""
    sizes = [(height, width)]
    for _ in range(octaves - 1):
        h, w = sizes[-1]
        nh, nw = round(h / scale), round(w / scale)
        if min(nh, nw) < MIN_OCTAVE_SIDE:
            break
        sizes.append((nh, nw))
    return sizes[::-1]


class DreamObjective:
    """Mean squared activation of the chosen layers/channels, relative to a reference image."""

    def __init__(self, vgg, layers: dict[str, list[int] | None], bf16: bool,
                 reference: torch.Tensor):
        self.vgg, self.layers, self.bf16 = vgg, layers, bf16
        self.names = list(layers)
        with torch.no_grad():
            ref = self.raw(reference)
        # each layer's term relative to its value on the photo (so layers mix evenly)
        self.norms = {k: max(float(v), 1e-8) for k, v in ref.items()}

    def raw(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            feats = self.vgg(image, self.names)
        out = {}
        for name, channels in self.layers.items():
            f = feats[name].float()
            if channels is not None:
                f = f[:, channels]
            out[name] = f.pow(2).mean()
        return out

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        raw = self.raw(image)
        return sum(raw[k] / self.norms[k] for k in self.names) / len(self.names)


def dream_step(image: torch.Tensor, objective: DreamObjective, step: float, jitter: int,
               generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """One jittered, normalised gradient-ascent step; returns the new image and the objective."""
    if jitter:
        ox, oy = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
    else:
        ox = oy = 0
    x = torch.roll(image, (oy, ox), (2, 3)).detach().requires_grad_(True)
    value = objective(x)
    (grad,) = torch.autograd.grad(value, x)
    grad = torch.roll(grad, (-oy, -ox), (2, 3))
    if not torch.isfinite(grad).all():
        raise FloatingPointError("the gradient became NaN or infinite; lower --step-size")
    grad = grad / (grad.abs().mean() + 1e-12)
    return (image + step * grad).clamp(0, 1), float(value.detach())


def deep_dream(image: torch.Tensor, p: DreamParams,
               callbacks: Sequence[Callable[[Progress], None]] = ()) -> torch.Tensor:
    """Deep Dream on a (1, 3, H, W) tensor in [0, 1] at its own size."""
    layers = parse_dream_layers(p.layers)
    vgg = get_vgg(p.weights, pooling=p.pooling)
    vgg.check_layers(list(layers))
    for name, channels in layers.items():
        n = channel_count(name)
        bad = [c for c in channels or () if c >= n]
        if bad:
            raise RestyleError(f"--layers: {name} has channels 0-{n - 1}; "
                               f"{', '.join(map(str, bad))} is out of range")
    bf16 = resolve_precision(p.precision)
    h, w = image.shape[-2:]
    sizes = octave_sizes(h, w, p.octaves, p.octave_scale)
    bases = [imaging.resize_tensor(image, s) for s in sizes]
    objective = DreamObjective(vgg, layers, bf16, bases[0])
    g = torch.Generator().manual_seed(p.seed)
    step = p.step_size / 255.0
    steps, done, start = p.iterations * len(sizes), 0, time.perf_counter()
    detail = torch.zeros_like(bases[0])
    current = bases[0]
    try:
        for level, (size, base) in enumerate(zip(sizes, bases)):
            if detail.shape[-2:] != base.shape[-2:]:
                detail = torch.nn.functional.interpolate(detail, size=size, mode="bilinear",
                                                         align_corners=False)
            current = (base + detail).clamp(0, 1)
            jitter = min(p.jitter, max(0, min(size) // 2 - 1))
            for i in range(1, p.iterations + 1):
                current, value = dream_step(current, objective, step, jitter, g)
                done += 1
                progress = Progress(level, len(sizes), i, p.iterations, done, steps, size,
                                    -value, {"activation": value}, current,
                                    time.perf_counter() - start)
                for cb in callbacks:
                    cb(progress)
            detail = current - base
    except Stop:
        pass
    if tuple(current.shape[-2:]) != (h, w):  # stopped early at a smaller octave
        current = imaging.resize_tensor(current, (h, w))
    return current.detach().clamp(0, 1)


@register
class DeepDream(Method):
    name = "deepdream"
    family = "image-optimization"
    task = "dream"
    takes = Takes(styles="none", content_word="image")
    summary = ("Mordvintsev et al. 2015: gradient ascent on VGG layers or channels with "
               "octaves and jitter")
    Params = DreamParams

    def run(self, inputs: Inputs, params: DreamParams, callbacks=()) -> torch.Tensor:
        if inputs.content is None:
            raise RestyleError("deepdream needs an input image")
        w, h = imaging.fit_size(*inputs.content.size, params.size)
        image = imaging.to_tensor(imaging.resize(inputs.content, (w, h)))
        return deep_dream(image, params, callbacks)
