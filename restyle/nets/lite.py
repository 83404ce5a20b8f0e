"""A distilled AdaIN network: a narrow VGG16-shaped encoder and its decoder.

AdaIN with the full VGG16 encoder and its mirror decoder costs about 200 GFLOP
for a 512 px image, too much for two CPU cores to match a small dedicated
network. Following Wang et al. (2020, "Collaborative Distillation for
Ultra-Resolution Universal Style Transfer"), restyle distils a narrow copy:

* :class:`LiteEncoder` has VGG16's layout up to ``relu4_1`` (the same 3x3
  convolutions, ReLUs and max-poolings) with a fraction of the channels
  (``width``; 0.375 keeps 24 ... 192 of 64 ... 512). It starts as a *pruned*
  VGG16 (:func:`prune_vgg`: the filters with the largest L1 norms and the input
  channels they read), so its features mean something from the first step.
* the decoder is a :class:`~restyle.nets.decoder.Decoder` of the same width
  reading the encoder's ``relu4_1`` channels.

Both are trained together by :mod:`restyle.nets.train_lite` against the full
VGG16 as teacher: the student's AdaIN output, re-encoded by the teacher, must
have the teacher's AdaIN target features and the style's statistics, and the
student's own reconstruction the photo. AdaIN then runs in the student's feature
space; ``--method adain-lite`` uses it (:mod:`restyle.methods.adain`).

Both networks live in one float16 safetensors file (``encoder.*``, ``decoder.*``)
with metadata; :func:`load_lite` reads it back and :func:`get_lite` loads the
packaged ``models/adain_lite.safetensors`` once per process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..backbone import (CAFFE_BGR_MEAN, VGG, conv_relu, load_once, max_pool2,
                        read_safetensors_metadata, save_weights)
from ..errors import RestyleError
from .decoder import Decoder, default_decoder_path

FORMAT = "restyle.adain_lite"
FORMAT_VERSION = "1"
LEVEL = "relu4_1"
#: VGG16's conv channels up to conv4_1, and after which of those convs it max-pools.
VGG16_TO_RELU4_1 = (64, 64, 128, 128, 256, 256, 256, 512)
POOL_AFTER = (1, 3, 6)
#: The VGG16 name of each of the encoder's ReLU outputs, in order.
TAPS = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3", "relu4_1")
FILE_NAME = "adain_lite.safetensors"


def lite_channels(width: float) -> list[int]:
    """The encoder's conv widths for a width multiplier."""
    if not 0.125 <= width <= 1.0:
        raise RestyleError(f"the distilled encoder's width must be between 0.125 and 1, "
                           f"not {width}")
    return [max(4, round(c * width)) for c in VGG16_TO_RELU4_1]


class LiteEncoder(nn.Module):
    """VGG16 up to ``relu4_1`` with ``width`` times the channels; Caffe preprocessing inside.

    Called like the backbone, ``encoder(image, ["relu4_1"])`` gives ``{"relu4_1":
    features}`` for RGB in [0, 1], so the one-pass machinery (tiles, masks, style
    cache) takes it where it takes VGG16.
    """

    names = (LEVEL,)

    def __init__(self, width: float = 0.375):
        super().__init__()
        self.width = float(width)
        self.channels = lite_channels(width)
        self.convs = nn.ModuleList()
        cin = 3
        for c in self.channels:
            self.convs.append(nn.Conv2d(cin, c, 3, padding=1))
            cin = c
        self.register_buffer("shift", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1))
        self.to(memory_format=torch.channels_last)

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """relu4_1 features of an RGB batch in [0, 1]."""
        return self.taps(image, (LEVEL,))[LEVEL]

    def taps(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The activations ``layers`` (VGG16 names of :data:`TAPS`, e.g. ``relu2_1``) of an
        RGB batch in [0, 1]; the encoder stops at the deepest one. Only ``relu4_1`` was
        distilled to match the teacher; the shallower taps are the pruned VGG16's filters
        after that distillation (a cheap loss network for style training)."""
        bad = [n for n in layers if n not in TAPS]
        if bad:
            raise RestyleError(f"the distilled encoder has no layer {', '.join(bad)} "
                               f"(it has {', '.join(TAPS)})")
        if image.shape[-1] < 8 or image.shape[-2] < 8:
            raise RestyleError(f"image too small for the distilled encoder: "
                               f"{image.shape[-2]}x{image.shape[-1]} (at least 8x8)")
        want = {TAPS.index(n) for n in layers}
        x = image.flip(1) * 255.0 - self.shift.to(image.dtype)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        out = {}
        for i, conv in enumerate(self.convs[:max(want) + 1]):
            x = conv_relu(conv, x)
            if i in want:
                out[TAPS[i]] = x
            if i in POOL_AFTER and i < max(want):
                x = max_pool2(x)
        return out

    def forward(self, image: torch.Tensor, layers: Sequence[str] = (LEVEL,)
                ) -> dict[str, torch.Tensor]:
        bad = [n for n in layers if n != LEVEL]
        if bad:
            raise RestyleError(f"the distilled encoder only has {LEVEL}, not {', '.join(bad)}")
        return {LEVEL: self.features(image)}


def _top_channels(weight: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices (sorted) of the ``keep`` output filters with the largest L1 norms."""
    norms = weight.abs().flatten(1).sum(1)
    return norms.topk(keep).indices.sort().values


@torch.no_grad()
def prune_vgg(encoder: LiteEncoder, vgg: VGG) -> torch.Tensor:
    """Initialise ``encoder`` with VGG16's largest filters (L1 norm) and their inputs.

    Returns the indices of the teacher's ``relu4_1`` channels the student keeps (the
    decoder's pruned start uses them).
    """
    if vgg.arch != "vgg16" or vgg.preprocessing != "caffe":
        raise RestyleError("the distilled encoder is pruned from the embedded (Caffe) VGG16")
    prev = torch.arange(3)
    for conv, teacher, keep in zip(encoder.convs, vgg.convs, encoder.channels):
        idx = _top_channels(teacher.weight, keep)
        conv.weight.copy_(teacher.weight[idx][:, prev])
        conv.bias.copy_(teacher.bias[idx])
        prev = idx
    return prev


@torch.no_grad()
def prune_decoder(student: Decoder, teacher: Decoder, in_idx: torch.Tensor) -> None:
    """Initialise a narrow ``student`` decoder from a full-width ``teacher`` decoder:
    each conv keeps the teacher's largest filters, reading the channels kept before it
    (the first conv reads the encoder's kept channels ``in_idx``)."""
    s_convs = [m for m in student.modules() if isinstance(m, nn.Conv2d)]
    t_convs = [m for m in teacher.modules() if isinstance(m, nn.Conv2d)]
    if len(s_convs) != len(t_convs) or teacher.level != student.level:
        raise RestyleError("the teacher decoder does not have the student's layout")
    prev = in_idx
    for s, t in zip(s_convs, t_convs):
        idx = (torch.arange(t.out_channels) if s.out_channels == t.out_channels
               else _top_channels(t.weight, s.out_channels))
        s.weight.copy_(t.weight[idx][:, prev])
        s.bias.copy_(t.bias[idx])
        prev = idx


class LiteAdaIN(nn.Module):
    """The distilled encoder and its decoder, saved and loaded together."""

    #: The file format tag and what the model is called in messages (subclasses change them).
    FORMAT, WHAT = FORMAT, "distilled AdaIN model"

    def __init__(self, width: float = 0.375, feature_scale: float = 1.0):
        super().__init__()
        self.encoder = LiteEncoder(width)
        self.decoder = Decoder(LEVEL, width_mult=width, feature_scale=feature_scale,
                               in_channels=self.encoder.out_channels)
        self.metadata: dict[str, str] = {}

    @property
    def width(self) -> float:
        return self.encoder.width

    def save(self, path: str | Path, **metadata: Any) -> Path:
        """float16 weights and metadata to ``path`` (.safetensors), atomically."""
        tensors = {}
        for k, v in self.state_dict().items():
            keep32 = k.endswith("feature_scale") or k.endswith("shift")
            tensors[k] = v.detach().cpu().to(torch.float32 if keep32 else torch.float16)\
                .reshape(v.shape or (1,)).contiguous()
        return save_weights(tensors, path, "model", metadata, format=self.FORMAT,
                            format_version=FORMAT_VERSION, level=LEVEL, width=repr(self.width),
                            teacher="vgg16")


def load_lite(path: str | Path, cls: type[LiteAdaIN] = LiteAdaIN) -> LiteAdaIN:
    """A model saved by :meth:`LiteAdaIN.save` (or a subclass ``cls``'s: float32, eval mode,
    frozen); missing, corrupt or mismatching files raise :class:`RestyleError`."""
    meta = read_safetensors_metadata(path, cls.FORMAT, FORMAT_VERSION, cls.WHAT)
    try:
        model = cls(float(meta["width"]))
    except (KeyError, ValueError) as e:
        raise RestyleError(f"{path}: damaged model metadata ({e})") from None
    from safetensors.torch import load_file
    try:
        tensors = load_file(str(path))
        own = model.state_dict()
        state = {k: v.float().reshape(own[k].shape) if k in own else v
                 for k, v in tensors.items()}
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as e:
        raise RestyleError(f"{path}: the weights do not fit a width-{meta['width']} "
                           f"{cls.WHAT} ({str(e).splitlines()[0]})") from None
    except Exception as e:
        raise RestyleError(f"{path} is damaged ({e})") from None
    scale = model.decoder.feature_scale
    if not torch.isfinite(scale) or float(scale) <= 0:
        raise RestyleError(f"{path}: invalid feature scale {float(scale)}")
    model.metadata = meta
    model.requires_grad_(False)
    model.to(memory_format=torch.channels_last)
    return model.eval()


def default_lite_path(folder: str | Path | None = None) -> Path:
    """``models/adain_lite.safetensors`` (or in ``$RESTYLE_MODELS`` / ``folder``)."""
    return default_decoder_path(LEVEL, folder).with_name(FILE_NAME)


_LOADED: dict[str, tuple[tuple[int, int], LiteAdaIN]] = {}


def get_lite(path: str | Path | None = None) -> LiteAdaIN:
    """The distilled AdaIN model from ``path`` (default :func:`default_lite_path`), loaded
    once per process and reloaded when the file changes."""
    p = default_lite_path() if path in (None, "") else Path(path).expanduser()
    if not p.exists():
        raise RestyleError(
            f"no distilled AdaIN model at {p}; make it with `restyle train adain-lite --out "
            f"runs/adain_lite --minutes 120 --export {p}` (or use --method adain)")
    return load_once(_LOADED, p, load_lite, limit=4)

