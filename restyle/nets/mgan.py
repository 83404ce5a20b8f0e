"""MGAN: a per-style decoder trained against a patch discriminator (Li & Wand 2016).

Li and Wand ("Precomputed Real-Time Texture Synthesis with Markovian Generative
Adversarial Networks", ECCV 2016) train a feed-forward generator that turns a
photo's VGG features (relu4_1) into an image whose *neural patches* a
discriminator cannot tell from the painting's: the discriminator is a small
convolutional network on VGG feature maps scoring every position (a patch of the
image), trained with a hinge (max-margin) loss, so the generator learns the
painting's local texture (a Markovian, patch-based style) rather than its global
Gram statistics. A content loss keeps the photo's features.

restyle's MGAN (:class:`MGAN`) is built on the distilled adain-lite pair
(:mod:`restyle.nets.lite`): the frozen lite encoder gives the relu4_1 features,
and the decoder, which starts as adain-lite's (so it already inverts those
features), learns the style. Inference costs what ``--method adain-lite`` costs.
:mod:`restyle.nets.train_mgan` trains it; ``--method mgan`` runs it.

A model holds one painting. Its file stores a 16x16 thumbnail of the painting, so
``restyle transfer photo.jpg painting.jpg --method mgan`` finds the installed
model trained on that painting, and a model given with ``--model`` refuses a
different style image instead of silently painting another style.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from .. import imaging
from ..backbone import load_once, read_safetensors_metadata
from ..errors import RestyleError
from .lite import LiteAdaIN, load_lite
from .stylenet import models_dir

THUMB = 16
#: Mean absolute difference (0-1 RGB) of two thumbnails under which they show one painting.
SAME_PAINTING = 0.06


class MGAN(LiteAdaIN):
    """The lite encoder and a decoder trained adversarially for one painting."""

    FORMAT, WHAT = "restyle.mgan", "MGAN model"

    @property
    def style_name(self) -> str:
        return self.metadata.get("style", "?")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The stylised image (unclamped) for an RGB batch in [0, 1]."""
        return self.decoder(self.encoder.features(image), image.shape[-2:])

    @torch.no_grad()
    def stylize(self, image: torch.Tensor, bf16: bool = False) -> torch.Tensor:
        """Inference: float32 output in [0, 1]."""
        with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self(image).float().clamp(0, 1)


def thumbnail(image: Image.Image | torch.Tensor) -> torch.Tensor:
    """A painting's (3, 16, 16) thumbnail (area-averaged), what a model recognises it by."""
    t = imaging.to_tensor(image) if isinstance(image, Image.Image) else image.float()
    return F.adaptive_avg_pool2d(t.reshape(1, 3, *t.shape[-2:]), THUMB)[0]


def same_painting(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).abs().mean()) < SAME_PAINTING


def model_thumbnail(model: MGAN) -> torch.Tensor:
    try:
        return torch.tensor(json.loads(model.metadata["thumbnail"])).reshape(3, THUMB, THUMB)
    except (KeyError, ValueError, RuntimeError):
        raise RestyleError("damaged MGAN model metadata (no style thumbnail)") from None


def load_mgan(path: str | Path) -> MGAN:
    """A model saved by :meth:`MGAN.save` (float32, eval mode, frozen)."""
    model = load_lite(path, MGAN)
    model_thumbnail(model)
    return model


_LOADED: dict[str, tuple[tuple[int, int], MGAN]] = {}


def get_mgan(path: str | Path) -> MGAN:
    """:func:`load_mgan` once per process (reloaded when the file changes)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise RestyleError(f"MGAN model not found: {p}")
    return load_once(_LOADED, p, load_mgan, limit=4)


def installed_mgans(folder: str | Path | None = None) -> dict[str, Path]:
    """MGAN models in the models folder, by file name (without .safetensors)."""
    folder = Path(folder) if folder else models_dir()
    found = {}
    for p in sorted(folder.glob("*.safetensors")) if folder.is_dir() else ():
        try:
            read_safetensors_metadata(p, MGAN.FORMAT, "1", MGAN.WHAT)
        except RestyleError:
            continue
        found[p.stem] = p
    return found


def mgan_for(style: Image.Image, model: str = "") -> MGAN:
    """The MGAN model for the painting ``style``: ``model`` (a path, or the name of an
    installed one), checked to be trained on that painting; else the installed model whose
    painting it is. A one-line RestyleError when there is none."""
    want = thumbnail(style)
    if model:
        installed = installed_mgans()
        net = get_mgan(installed.get(model, model))
        if not same_painting(model_thumbnail(net), want):
            raise RestyleError(f"the MGAN model {model} was trained on {net.style_name}, not "
                               f"on this style image; an MGAN model paints only its own "
                               f"painting (train one with `restyle train mgan STYLE.jpg`)")
        return net
    for path in installed_mgans().values():
        net = get_mgan(path)
        if same_painting(model_thumbnail(net), want):
            return net
    raise RestyleError("no installed MGAN model was trained on this style image; train one "
                       "with `restyle train mgan STYLE.jpg --out runs/mgan --minutes 30 "
                       "--export models/mgan_NAME.safetensors` or pass --model FILE")
