"""Decoders that invert the VGG16 encoder: features at one layer back to an image.

The one-pass methods (AdaIN, WCT, style-swap) transform an image's VGG features
and need a network that turns the transformed features into a picture. A
:class:`Decoder` mirrors the encoder up to its level (``relu1_1`` ... ``relu5_1``):

* each 3x3 convolution of the encoder has a 3x3 convolution in the decoder, in
  reverse order, mapping the conv's output channels back to its input channels;
  reflection padding, as in the published AdaIN and WCT decoders (zero padding tends to
  leave visible frames along the borders);
* each max-pooling becomes nearest-neighbour 2x upsampling (no checkerboard
  artefacts, unlike transposed convolutions);
* ReLU after every convolution except the last, which is linear: an image is a
  regression target in [0, 1], MSE on a linear output keeps full gradients up to
  pure black and white (a sigmoid saturates exactly there and needs large logits
  for them), and the caller clamps, as the published AdaIN/WCT decoders do.

The input features are divided by a fixed ``feature_scale``, the RMS of the
encoder's features on photos (about 22 at relu3_1): raw VGG activations of
0-255 Caffe input are large, and feeding them unscaled stalled training
(TRAINING-NOTES: PSNR 12.5 dB flat vs 19 dB rising). The scale is a buffer,
saved with the weights.

Weights are stored as float16 safetensors with metadata (level, width, feature
scale, training steps, ...); :func:`load_decoder` reads them back. The decoders
restyle trains itself live in the repository's ``models/`` folder (or
``$RESTYLE_MODELS``) as ``decoder_<level>.safetensors``: :func:`default_decoder_path`
names them and :func:`get_decoder` loads one once per process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..backbone import (CHANNELS, VGG_BLOCKS, conv_relu, load_once, read_safetensors_metadata,
                        save_weights)
from ..errors import RestyleError

LEVELS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
FORMAT = "restyle.decoder"
FORMAT_VERSION = "1"
#: Folder holding ``decoder_<level>.safetensors`` instead of the repository's ``models/``.
MODELS_ENV = "RESTYLE_MODELS"
#: Extra ``restyle train decoder`` flags of the packaged decoders: the relu4_1 one is
#: AdaIN-trained (it serves AdaIN and WCT's relu4_1 step alike).
TRAIN_FLAGS = {"relu4_1": " --adain-loss"}


def check_level(level: str) -> int:
    """The VGG block number (1-5) of a decoder level; RestyleError for anything else."""
    if level not in LEVELS:
        raise RestyleError(f"decoders exist for {', '.join(LEVELS)}, not {level!r}")
    return LEVELS.index(level) + 1


class _ReflectPad1(torch.autograd.Function):
    """``F.pad(x, (1, 1, 1, 1), mode="reflect")`` as slice copies.

    Same values and gradients as the built-in, which on CPU (bfloat16, channels_last)
    made a decoder training step 20-25 % slower than this (measured at relu3_1 and
    relu4_1, batch 8, 128 px).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        fmt = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
               else torch.contiguous_format)
        out = torch.empty((n, c, h + 2, w + 2), dtype=x.dtype, device=x.device,
                          memory_format=fmt)
        out[:, :, 1:-1, 1:-1] = x
        out[:, :, 0, 1:-1] = x[:, :, 1]
        out[:, :, -1, 1:-1] = x[:, :, -2]
        out[:, :, :, 0] = out[:, :, :, 2]
        out[:, :, :, -1] = out[:, :, :, -3]
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # undo the forward in reverse order: fold the border columns, then the border rows
        g = grad[:, :, :, 1:-1].clone(memory_format=torch.preserve_format)
        g[:, :, :, 1] += grad[:, :, :, 0]
        g[:, :, :, -2] += grad[:, :, :, -1]
        g[:, :, 2] += g[:, :, 0]
        g[:, :, -3] += g[:, :, -1]
        return g[:, :, 1:-1]


def reflect_pad1(x: torch.Tensor) -> torch.Tensor:
    """Reflection padding by one pixel on each side of an (N, C, H, W) tensor (H, W >= 2)."""
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise RestyleError(f"features of {x.shape[-2]}x{x.shape[-1]} are too small to decode")
    return _ReflectPad1.apply(x)


class ReflectConv2d(nn.Conv2d):
    """A 3x3 convolution over a reflection-padded input."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 3, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(reflect_pad1(x), self.weight, self.bias)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return ReflectConv2d(cin, cout)


def upsample2_reflect_pad1(x: torch.Tensor) -> torch.Tensor:
    """``reflect_pad1(F.interpolate(x, scale_factor=2, mode="nearest"))`` in one copy of
    the upsampled map instead of two (inference: no gradient)."""
    n, c, h, w = x.shape
    fmt = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
           else torch.contiguous_format)
    out = torch.empty((n, c, 2 * h + 2, 2 * w + 2), dtype=x.dtype, device=x.device,
                      memory_format=fmt)
    inner = out[:, :, 1:-1, 1:-1]
    for dy in (0, 1):
        for dx in (0, 1):
            inner[:, :, dy::2, dx::2] = x
    # the reflection of a nearest-2x map repeats its edge rows and columns
    out[:, :, 0, 1:-1] = out[:, :, 1, 1:-1]
    out[:, :, -1, 1:-1] = out[:, :, -2, 1:-1]
    out[:, :, :, 0] = out[:, :, :, 1]
    out[:, :, :, -1] = out[:, :, :, -2]
    return out


def _run_stage(stage: nn.Sequential, x: torch.Tensor, padded: bool = False) -> torch.Tensor:
    """A decoder stage, each convolution followed by a ReLU run as one (fused in CPU
    inference, :func:`restyle.backbone.conv_relu`). ``padded``: ``x`` is already
    reflection-padded for the first convolution."""
    layers = list(stage)
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, ReflectConv2d):
            xp = x if padded else reflect_pad1(x)
            padded = False
            if i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU):
                x = conv_relu(layer, xp)
                i += 2
                continue
            x = layer._conv_forward(xp, layer.weight, layer.bias)
        else:
            x = layer(x)
        i += 1
    return x


class Decoder(nn.Module):
    """The mirror of VGG16 up to ``level``: features ``(N, C, h, w)`` to RGB ``(N, 3, H, W)``.

    ``width_mult`` scales the hidden channel counts (not the input features or
    the 3 output channels). ``in_channels`` overrides the number of input feature
    channels (default: VGG16's at the level), for encoders narrower than VGG16
    (the distilled AdaIN encoder of :mod:`restyle.nets.lite`). ``forward`` returns the raw
    (unclamped) output used for training; :meth:`decode` is the inference call (no
    gradients, clamped).
    """

    def __init__(self, level: str, width_mult: float = 1.0, feature_scale: float = 1.0,
                 in_channels: int | None = None):
        super().__init__()
        block = check_level(level)
        if not 0.125 <= width_mult <= 8:
            raise RestyleError(f"width_mult must be between 0.125 and 8, not {width_mult}")
        self.level = level
        self.width_mult = float(width_mult)
        self.metadata: dict[str, str] = {}  # filled by load_decoder
        self.register_buffer("feature_scale", torch.tensor(float(feature_scale)))

        def width(b: int) -> int:  # output channels of the mirror of block b's convs
            return 3 if b == 0 else max(8, round(CHANNELS[b - 1] * width_mult))

        # stages[0] runs at the level's resolution; each later stage after a 2x upsampling.
        self.in_channels = int(in_channels or CHANNELS[block - 1])
        stages: list[list[nn.Module]] = [[_conv(self.in_channels, width(block - 1))]]
        for b in range(block - 1, 0, -1):
            stages[-1].append(nn.ReLU(inplace=True))
            stage: list[nn.Module] = []
            for _ in range(VGG_BLOCKS["vgg16"][b - 1] - 1):  # conv{b}_n ... conv{b}_2 mirrored
                stage += [_conv(width(b), width(b)), nn.ReLU(inplace=True)]
            stage.append(_conv(width(b), width(b - 1)))  # conv{b}_1 mirrored
            stages.append(stage)
        self.stages = nn.ModuleList(nn.Sequential(*s) for s in stages)
        self.to(memory_format=torch.channels_last)

    def forward(self, features: torch.Tensor, output_size: Sequence[int] | None = None
                ) -> torch.Tensor:
        """Decode features; ``output_size=(H, W)`` of the encoded image restores odd sizes.

        The encoder floors odd sizes when it pools (65 -> 32); with ``output_size``
        every upsampling goes to the encoder's size at that depth, so the output
        has exactly the input image's size.
        """
        x = features / self.feature_scale.to(features.dtype)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        sizes = None
        if output_size is not None:
            h, w = int(output_size[0]), int(output_size[1])
            sizes = [(h, w)]
            for _ in range(len(self.stages) - 1):
                sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
            sizes = sizes[::-1]  # coarsest first, like the stages
        inference = not (torch.is_grad_enabled() and (x.requires_grad or self.training))
        for i, stage in enumerate(self.stages):
            padded = False
            if i > 0:
                target = (2 * x.shape[-2], 2 * x.shape[-1]) if sizes is None else sizes[i]
                if inference and tuple(target) == (2 * x.shape[-2], 2 * x.shape[-1]):
                    x, padded = upsample2_reflect_pad1(x), True
                else:
                    x = F.interpolate(x, size=tuple(target), mode="nearest")
            x = _run_stage(stage, x, padded)
        return x

    @torch.no_grad()
    def graft(self, shallower: "Decoder") -> int:
        """Copy a shallower level's decoder into this one's tail; returns the convs copied.

        A relu5_1 decoder ends with the layers of a relu4_1 decoder (the mirror of conv4_1
        onwards), so training it can start from a trained relu4_1 decoder and learn only
        the new head (which maps relu5_1 features to what the relu4_1 decoder reads).
        """
        if check_level(shallower.level) >= check_level(self.level):
            raise RestyleError(f"a {self.level} decoder grows from a shallower level's, "
                               f"not from {shallower.level}")
        mine = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        theirs = [m for m in shallower.modules() if isinstance(m, nn.Conv2d)]
        for dst, src in zip(mine[len(mine) - len(theirs):], theirs):
            if dst.weight.shape != src.weight.shape:
                raise RestyleError(f"the {shallower.level} decoder's layers do not fit this "
                                   f"{self.level} decoder's tail (different widths)")
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
        return len(theirs)

    @torch.no_grad()
    def decode(self, features: torch.Tensor, output_size: Sequence[int] | None = None
               ) -> torch.Tensor:
        """Inference: the decoded image in [0, 1], float32."""
        return self(features, output_size).float().clamp(0, 1)

    # ------------------------------------------------------------------------- files

    def save(self, path: str | Path, **metadata: Any) -> Path:
        """Write float16 weights and metadata to ``path`` (.safetensors), atomically.

        ``metadata`` (e.g. ``steps=12000, psnr=21.3``) is stored as strings next to
        the architecture (level, width_mult, feature_scale); read it back from
        ``decoder.metadata`` after :func:`load_decoder`.
        """
        tensors = {k: v.detach().to("cpu", torch.float16).contiguous()
                   for k, v in self.state_dict().items() if k != "feature_scale"}
        tensors["feature_scale"] = self.feature_scale.detach().float().cpu().reshape(1)
        return save_weights(tensors, path, "decoder", metadata, format=FORMAT,
                            format_version=FORMAT_VERSION, level=self.level,
                            width_mult=repr(self.width_mult), encoder="vgg16",
                            in_channels=str(self.in_channels),
                            feature_scale=repr(float(self.feature_scale)))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a decoder file, without loading the weights."""
    return read_safetensors_metadata(path, FORMAT, FORMAT_VERSION, "decoder")


def load_decoder(path: str | Path, level: str | None = None, device: str | torch.device = "cpu"
                 ) -> Decoder:
    """Load a decoder saved by :meth:`Decoder.save` (float32, eval mode, frozen).

    With ``level`` the file must have been trained for that layer. Missing,
    corrupt or mismatching files raise :class:`RestyleError`.
    """
    meta = read_metadata(path)
    if level is not None:
        check_level(level)
        if meta.get("level") != level:
            raise RestyleError(f"{path} decodes {meta.get('level')} features, "
                               f"but a {level} decoder is needed")
    try:
        dec = Decoder(meta["level"], float(meta["width_mult"]),
                      in_channels=int(meta["in_channels"]) if "in_channels" in meta else None)
    except (KeyError, ValueError) as e:
        raise RestyleError(f"{path}: damaged decoder metadata ({e})") from None
    from safetensors.torch import load_file
    try:
        tensors = load_file(str(path))
        scale = tensors.pop("feature_scale").reshape(())
        tensors["feature_scale"] = scale
        dec.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except (RuntimeError, KeyError) as e:
        raise RestyleError(f"{path}: the weights do not fit a {meta['level']} decoder "
                           f"({str(e).splitlines()[0]})") from None
    except Exception as e:
        raise RestyleError(f"{path} is damaged ({e})") from None
    if not torch.isfinite(dec.feature_scale) or float(dec.feature_scale) <= 0:
        raise RestyleError(f"{path}: invalid feature scale {float(dec.feature_scale)}")
    dec.metadata = meta
    dec.requires_grad_(False)
    dec.to(device=device, memory_format=torch.channels_last)
    return dec.eval()


# ----------------------------------------------------------------------------- packaged decoders

def default_decoder_path(level: str, folder: str | Path | None = None) -> Path:
    """``<folder>/decoder_<level>.safetensors``; the folder defaults to ``$RESTYLE_MODELS``,
    else the repository's ``models/`` (``Path(restyle.__file__).resolve().parents[1] / "models"``).
    """
    check_level(level)
    if folder in (None, ""):
        env = os.environ.get(MODELS_ENV)
        folder = Path(env) if env else Path(__file__).resolve().parents[2] / "models"
    return Path(folder).expanduser() / f"decoder_{level}.safetensors"


_LOADED: dict[tuple[str, str], tuple[tuple[int, int], Decoder]] = {}
_MAX_LOADED = 8


def get_decoder(level: str, path: str | Path | None = None, hint: str = "") -> Decoder:
    """The ``level`` decoder from ``path`` (default :func:`default_decoder_path`), loaded
    once per process and shared (frozen, eval mode).

    The cache is keyed by the resolved path and level and checked against the file's
    modification time and size, so a retrained file is picked up. A missing file raises
    :class:`RestyleError` naming it and the ``restyle train decoder`` command that makes
    it (``hint`` is appended, e.g. another way out).
    """
    p = default_decoder_path(level) if path in (None, "") else Path(path).expanduser()
    if not p.exists():
        mkdir = "" if p.parent.is_dir() else f"mkdir -p {p.parent} && "
        raise RestyleError(
            f"no {level} decoder at {p}; make it with `{mkdir}restyle train decoder --level "
            f"{level}{TRAIN_FLAGS.get(level, '')} --minutes 120 --out runs/decoder_{level} "
            f"--export {p}`" + (f" {hint}" if hint else ""))
    return load_once(_LOADED, p, lambda f: load_decoder(f, level), key=(str(p.resolve()), level),
                     limit=_MAX_LOADED)
