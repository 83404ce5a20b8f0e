"""What every network trainer shares: training photos as random crops, the
learning-rate schedule, atomic checkpoints, a JSONL log and PSNR.

Nothing here holds global state: randomness comes from a ``torch.Generator``
whose state goes into the checkpoint, so a resumed run draws the same crops it
would have drawn without the interruption.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .. import imaging
from ..errors import RestyleError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
#: Environment variable naming the data folder (with train/content/ and styles/ inside).
DATA_ENV = "RESTYLE_DATA"


def data_root() -> Path:
    """The shared data folder: ``$RESTYLE_DATA``, else ``../shared/data`` next to the project."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    import restyle
    return Path(restyle.__file__).resolve().parents[1].parent / "shared" / "data"


def image_files(folder: str | Path, what: str) -> list[Path]:
    """The image files in ``folder``, sorted by name; RestyleError if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RestyleError(f"{what} folder not found: {folder} (set ${DATA_ENV} to the data "
                           f"folder or pass the folder explicitly)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise RestyleError(f"no images in the {what} folder {folder}")
    return files


def load_uint8(path: str | Path, what: str, max_short_side: int | None = None) -> torch.Tensor:
    """An image file as a (3, H, W) uint8 tensor, optionally downscaled (short side)."""
    img = imaging.load_image(path, what)
    if max_short_side and min(img.size) > max_short_side:
        w, h = img.size
        s = max_short_side / min(w, h)
        img = imaging.resize(img, (max(1, round(w * s)), max(1, round(h * s))))
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def center_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """The central square of a (3, H, W) uint8 image, resized to ``size``: (3, size, size) float."""
    _, h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[:, top:top + side, left:left + side].float().div(255).unsqueeze(0)
    return imaging.resize_tensor(square, (size, size))[0]


class RandomCrops:
    """Square crops of random size and position, resized to ``crop``, randomly mirrored.

    The crop's side in the source image is log-uniform between ``crop`` (native
    pixels) and the image's short side (the whole height), so the network sees
    both fine detail and whole scenes downscaled; photos are never enlarged
    unless they are smaller than ``crop``.
    """

    def __init__(self, images: Sequence[torch.Tensor], crop: int):
        if not images:
            raise RestyleError("no training images")
        self.images = list(images)
        self.crop = crop

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """A batch (n, 3, crop, crop) of float RGB in [0, 1]."""
        out = torch.empty(n, 3, self.crop, self.crop)
        idx = torch.randint(len(self.images), (n,), generator=generator)
        u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
        for k in range(n):
            img = self.images[int(idx[k])]
            _, h, w = img.shape
            short = min(h, w)
            lo = min(self.crop, short)
            side = round(lo * (short / lo) ** float(u[k, 0]))  # log-uniform in [lo, short]
            side = max(1, min(side, short))
            top = int(float(u[k, 1]) * (h - side + 1))
            left = int(float(u[k, 2]) * (w - side + 1))
            patch = img[:, top:top + side, left:left + side].float().div(255).unsqueeze(0)
            patch = imaging.resize_tensor(patch, (self.crop, self.crop))[0]
            out[k] = patch.flip(-1) if float(u[k, 3]) < 0.5 else patch
        return out


def warmup_cosine(step: int, total: int | None, peak: float, warmup: int,
                  final_fraction: float = 0.01) -> float:
    """Learning rate at ``step`` (0-based): linear warmup, then cosine decay to
    ``final_fraction * peak`` at ``total``. With ``total`` unknown (yet), only the warmup
    applies. The warmup is capped at a tenth of the run.
    """
    if total is not None:
        warmup = min(warmup, total // 10)
    if step < warmup:
        return peak * (step + 1) / warmup
    if total is None:
        return peak
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * t)))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`atomic_torch_save` (tensors and plain data only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RestyleError(f"cannot read the checkpoint {path} ({e}); delete it or pass "
                           f"--no-resume to start over") from None
    if not isinstance(state, dict) or "step" not in state:
        raise RestyleError(f"{path} is not a restyle training checkpoint")
    return state


class JsonlLog:
    """Append-only JSON-lines log. ``truncate_to`` drops lines written after a checkpoint."""

    def __init__(self, path: Path, truncate_to: int | None = None):
        self.path = path
        if truncate_to is None:
            path.write_text("")
        elif path.exists() and path.stat().st_size > truncate_to:
            with open(path, "r+b") as f:
                f.truncate(truncate_to)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0


def read_log(path: str | Path) -> list[dict]:
    """The records of a JSONL log."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image of a batch in [0, 1]: 10 log10(1 / MSE)."""
    mse = (output.float().clamp(0, 1) - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
