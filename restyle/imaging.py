"""Images in and out: robust loading, resizing, colour spaces and colour transfer.

Everything that touches pixels outside the networks lives here. Tensors are
(N, 3, H, W) float RGB in [0, 1]; arrays are (H, W, 3).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from . import fsio
from .errors import RestyleError

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor]

#: Refuse to decode images larger than this many pixels (decompression bombs).
MAX_PIXELS = 100_000_000
#: Largest output side accepted anywhere (a 16k x 16k result is already ~1 GB of floats).
MAX_SIDE = 16384
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
#: File extensions :func:`image_files` picks from a folder.
READ_SUFFIXES = frozenset(SAVE_FORMATS) | {".gif"}


# ----------------------------------------------------------------------------- loading

def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: alpha composited on white, 16-bit scaled, CMYK converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return img


def _from_array(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW to HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise RestyleError(f"an image array must be HxW, HxWx3 or HxWx4, not {arr.shape}")
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == np.uint16:
        out = (arr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool:
        out = (np.clip(np.nan_to_num(arr.astype(np.float64)), 0, 1) * 255 + 0.5).astype(np.uint8)
    else:
        out = np.clip(arr, 0, 255).astype(np.uint8)
    return _to_rgb(Image.fromarray(out))


def load_image(src: ImageLike, what: str = "image") -> Image.Image:
    """Load a path, PIL image, array, tensor, encoded bytes or a binary stream (such as
    ``sys.stdin.buffer``) as an 8-bit RGB PIL image.

    EXIF orientation is applied, alpha is composited on white, palette, grayscale,
    16-bit and CMYK images are converted. Problems raise ``RestyleError`` with a
    one-line message naming ``what`` (e.g. "style image").
    """
    if isinstance(src, Image.Image):
        return _to_rgb(ImageOps.exif_transpose(src))
    if isinstance(src, torch.Tensor):
        t = src.detach().cpu().float()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise RestyleError(f"{what}: expected one image, got a batch of {t.shape[0]}")
            t = t[0]
        return _from_array(t.numpy())
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(src)), what, "(image data)")
    if hasattr(src, "read"):  # a binary stream, read whole (stdin cannot seek)
        return _decode(io.BytesIO(src.read()), what, str(getattr(src, "name", "(stream)")))
    if not isinstance(src, (str, os.PathLike)):
        raise RestyleError(f"{what}: expected a file path, PIL image, array, tensor or image "
                           f"bytes, not {type(src).__name__}")
    path = Path(src)
    if not path.exists():
        raise RestyleError(f"{what} not found: {path}")
    if path.is_dir():
        raise RestyleError(f"{what} is a folder, not an image file: {path}")
    return _decode(path, what, str(path))


def _decode(source: Path | io.BytesIO, what: str, label: str) -> Image.Image:
    """Decode a file or in-memory image with the size limit and one-line errors.

    The limit is checked per call on the size in the header, before decoding; Pillow's
    process-wide ``Image.MAX_IMAGE_PIXELS`` is left alone (other threads rely on it)."""
    too_large = RestyleError(f"{what} {label} is too large to decode safely "
                             f"(more than {MAX_PIXELS // 1_000_000} megapixels)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source)
        with img:
            if img.size[0] * img.size[1] > MAX_PIXELS:
                raise too_large
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except Image.DecompressionBombError:
        raise too_large from None
    except UnidentifiedImageError:
        raise RestyleError(f"{what} {label} is not an image file restyle can read") from None
    except PermissionError:
        raise RestyleError(f"{what} {label} cannot be read: permission denied") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise RestyleError(f"{what} {label} is damaged or truncated ({e})") from None


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder`` (by extension, hidden files left out), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in READ_SUFFIXES)


# ----------------------------------------------------------------------------- tensors

def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB to a (1, 3, H, W) float tensor in [0, 1]."""
    arr = np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
    return torch.from_numpy(arr).unsqueeze(0).float().div_(255.0)  # one pass to float


def to_pil(t: torch.Tensor) -> Image.Image:
    """A (1, 3, H, W) or (3, H, W) tensor in [0, 1] to a PIL RGB image."""
    if t.ndim == 4:
        t = t[0]
    arr = (t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def fit_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(w, h) scaled so that the longer side is ``long_side``, keeping the aspect ratio."""
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """High-quality resize of a PIL image to (w, h)."""
    if img.size == tuple(size):
        return img
    return img.resize(tuple(size), Image.Resampling.LANCZOS, reducing_gap=3.0)


def resize_tensor(t: torch.Tensor, size: tuple[int, int], wrap: bool = False) -> torch.Tensor:
    """Resize a (N, C, H, W) tensor to (h, w) = ``size`` with antialiased bicubic filtering.

    With ``wrap`` the image is treated as periodic (for tileable textures).
    """
    h, w = size
    if tuple(t.shape[-2:]) == (h, w):
        return t
    if not wrap:
        return F.interpolate(t, size=(h, w), mode="bicubic", align_corners=False,
                             antialias=True).clamp(0, 1)
    ph, pw = max(2, t.shape[-2] // 8), max(2, t.shape[-1] // 8)
    padded = F.pad(t, (pw, pw, ph, ph), mode="circular")
    sy, sx = h / t.shape[-2], w / t.shape[-1]
    big = F.interpolate(padded, scale_factor=(sy, sx), mode="bicubic", align_corners=False,
                        antialias=True, recompute_scale_factor=False)
    oy, ox = round(ph * sy), round(pw * sx)
    return big[..., oy:oy + h, ox:ox + w].clamp(0, 1)


def gaussian_blur(t: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of a (N, C, H, W) tensor (edges reflected), per channel."""
    if sigma <= 0:
        return t
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-x * x / (2 * sigma * sigma))
    k = (k / k.sum()).to(t.dtype)
    c = t.shape[1]
    out = t
    for kern, pad in ((k.view(1, 1, 1, -1), (radius, radius, 0, 0)),
                      (k.view(1, 1, -1, 1), (0, 0, radius, radius))):
        mode = "reflect" if min(out.shape[-2:]) > radius else "replicate"
        out = F.conv2d(F.pad(out, pad, mode=mode), kern.expand(c, 1, -1, -1), groups=c)
    return out


# ----------------------------------------------------------------------------- saving

def check_output_path(path: str | os.PathLike, overwrite: bool = False,
                      inputs: Sequence = ()) -> Path:
    """Validate an output path before any work is done; returns it as a Path.

    Besides the folder and the extension this checks that the file can really be
    written (:func:`restyle.fsio.check_writable`: name length, a temporary file in the
    folder) and that it is none of ``inputs`` (the command's input files, which
    ``--overwrite`` must never replace)."""
    p = _checked_output(path, overwrite)
    refuse_input_overwrite(p, inputs)
    fsio.check_writable(p)
    return p


def _checked_output(path: str | os.PathLike, overwrite: bool) -> Path:
    p = fsio.check_name(path)
    if p.suffix.lower() not in SAVE_FORMATS:
        raise RestyleError(f"cannot write {p}: unknown image extension "
                           f"(use one of {', '.join(sorted(SAVE_FORMATS))})")
    if not p.parent.exists():
        raise RestyleError(f"cannot write {p}: folder {p.parent} does not exist")
    if not p.parent.is_dir():
        raise RestyleError(f"cannot write {p}: {p.parent} is not a folder")
    if p.is_dir():
        raise RestyleError(f"cannot write {p}: it is a folder")
    if p.exists() and not overwrite:
        raise RestyleError(f"{p} already exists; pass --overwrite (overwrite=True) to replace it")
    if not os.access(p.parent, os.W_OK):
        raise RestyleError(f"cannot write {p}: folder {p.parent} is not writable")
    return p


def input_paths(values: Iterable) -> list[str]:
    """The file paths among ``values`` (paths, images, lists of them, comma-separated
    path lists such as mask parameters): what an output must not replace."""
    out: list[str] = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out += input_paths(v)
        elif isinstance(v, os.PathLike):
            out.append(os.fspath(v))
        elif isinstance(v, str) and v:
            out += [s.strip() for s in v.split(",") if s.strip()]
    return out


def refuse_input_overwrite(output: str | os.PathLike, inputs: Iterable) -> None:
    """A one-line RestyleError when ``output`` is (the same file as) one of ``inputs``:
    no command replaces what the user gave it to read, ``--overwrite`` or not."""
    out = Path(output)
    if not out.exists():
        return  # a file that does not exist yet is nobody's input
    for src in input_paths(inputs):
        try:
            same = os.path.samefile(out, src)
        except (OSError, ValueError):
            continue
        if same:
            raise RestyleError(f"the output {out} would replace the input {src}; choose "
                               "another output name")


def _encode(img: Image.Image | torch.Tensor, f, fmt: str) -> None:
    if isinstance(img, torch.Tensor):
        img = to_pil(img)
    img.save(f, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))


def image_bytes(img: Image.Image | torch.Tensor, fmt: str = "PNG") -> bytes:
    """The image encoded in memory (e.g. PNG for standard output)."""
    buf = io.BytesIO()
    _encode(img, buf, fmt)
    return buf.getvalue()


def save_image(img: Image.Image | torch.Tensor, path: str | os.PathLike,
               overwrite: bool = True) -> Path:
    """Write an image atomically (:func:`restyle.fsio.atomic_write`: a temporary file in
    the same folder, synced, then renamed). A reader never sees a half-written file, and
    an interrupted save leaves none."""
    p = _checked_output(path, overwrite)
    try:
        with fsio.atomic_write(p) as f:
            _encode(img, f, SAVE_FORMATS[p.suffix.lower()])
    except OSError as e:  # the encoder's own writes (a full disk, an I/O error)
        raise fsio.write_error(p, e) from None
    return p


# ----------------------------------------------------------------------------- colour

# ITU-R BT.601 YIQ, as used by Gatys et al. (2017) for luminance-only transfer.
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114],
                         [0.595716, -0.274453, -0.321263],
                         [0.211456, -0.522591, 0.311135]])
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)


def rgb_to_yiq(t: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _RGB2YIQ.to(t), t)


def yiq_to_rgb(t: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _YIQ2RGB.to(t), t)


def luminance(t: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luma Y of an RGB tensor."""
    return rgb_to_yiq(t)[:, :1]


def gray_rgb(t: torch.Tensor) -> torch.Tensor:
    """The luminance of ``t`` repeated into three channels."""
    return luminance(t).expand(-1, 3, -1, -1).clamp(0, 1)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Style luminance shifted and scaled to the content's mean and std, as grey RGB.

    Gatys et al. (2017), eq. 4: style luminance is matched to the content's before
    luminance-only transfer so that the output keeps the content's tonal range.
    """
    ys, yc = luminance(style), luminance(content)
    ys = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
    return ys.expand(-1, 3, -1, -1).clamp(0, 1)


def combine_luminance(luma_rgb: torch.Tensor, color_from: torch.Tensor) -> torch.Tensor:
    """Take Y from ``luma_rgb`` and the I, Q chroma from ``color_from`` (same size)."""
    y = luminance(luma_rgb)
    iq = rgb_to_yiq(color_from)[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], 1)).clamp(0, 1)


def color_stats(t: torch.Tensor, weight: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB mean (3, 1) and covariance (3, 3) of an image (1, 3, H, W), in float64;
    with ``weight`` (1, 1, H, W) >= 0 the weighted ones (a soft region)."""
    if weight is None:
        # one pass of float32 sums (float64 results): 6x faster than centring a float64
        # copy at 1024 px, covariance within 2e-6 of it for colours in [0, 1]
        x = t[0].reshape(3, -1).float()
        n = x.shape[1]
        mu = x.sum(1, keepdim=True).double() / n  # cascade sums: float32 is exact enough
        cov = (x @ x.T).double() / n - mu @ mu.T
        return mu, cov + 1e-5 * torch.eye(3, dtype=torch.float64)
    x = t[0].reshape(3, -1).double()
    w = weight.reshape(1, -1).double()
    w = w / w.sum().clamp_min(1e-12)
    mu = (x * w).sum(1, keepdim=True)
    xc = x - mu
    return mu, (xc * w) @ xc.T + 1e-5 * torch.eye(3, dtype=x.dtype)


def mix_color_stats(stats: list[tuple[torch.Tensor, torch.Tensor]], weights: list[float]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the mixture of colour distributions with these weights."""
    total = sum(weights)
    mu = sum(w / total * m for (m, _), w in zip(stats, weights))
    second = sum(w / total * (c + m @ m.T) for (m, c), w in zip(stats, weights))
    return mu, second - mu @ mu.T


def apply_color_stats(source: torch.Tensor, mu_r: torch.Tensor, cov_r: torch.Tensor,
                      weight: torch.Tensor | None = None) -> torch.Tensor:
    """Recolour ``source`` so its RGB mean and covariance (where ``weight`` is, if given)
    become ``mu_r``, ``cov_r``.

    The symmetric (principal-axes) solution of Gatys et al. (2017), section 5.2:
    x' = A (x - mu_s) + mu_r with A = C_r^(1/2) C_s^(-1/2), which keeps the
    source's structure and takes the reference's palette.
    """
    def sqrtm(c, inverse=False):
        vals, vecs = torch.linalg.eigh(c)
        vals = vals.clamp_min(1e-8).sqrt()
        if inverse:
            vals = 1.0 / vals
        return vecs @ torch.diag(vals) @ vecs.T

    mu_s, cov_s = color_stats(source, weight)
    a = (sqrtm(cov_r) @ sqrtm(cov_s, inverse=True)).float()
    x = source[0].reshape(3, -1).float()
    out = torch.addmm(mu_r.float() - a @ mu_s.float(), a, x).clamp_(0, 1)  # A x + (mu_r - A mu_s)
    return out.reshape(source.shape[1:]).unsqueeze(0).to(source.dtype)


def linear_color_transfer(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Recolour ``source`` so its RGB mean and covariance match ``reference``'s."""
    return apply_color_stats(source, *color_stats(reference))


def histogram_match(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-channel exact histogram matching of ``source`` to ``reference`` (CDF mapping)."""
    out = torch.empty_like(source)
    for c in range(3):
        s = source[0, c].flatten().double()
        r = reference[0, c].flatten().double()
        order = torch.argsort(s)
        ranks = torch.empty_like(order)
        ranks[order] = torch.arange(len(s))
        r_sorted = torch.sort(r).values
        pos = ranks.double() * ((len(r) - 1) / max(len(s) - 1, 1))
        lo = pos.floor().long().clamp(0, len(r) - 1)
        hi = (lo + 1).clamp(max=len(r) - 1)
        frac = pos - lo.double()
        vals = r_sorted[lo] * (1 - frac) + r_sorted[hi] * frac
        out[0, c] = vals.reshape(source.shape[-2:]).to(source.dtype)
    return out


def color_transfer(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Give ``source`` the colours of ``reference``: linear mean/covariance match, then
    exact per-channel histogram matching for the remaining non-Gaussian shape."""
    return histogram_match(linear_color_transfer(source, reference), reference)


# ----------------------------------------------------------------------------- sheets

def font(size: int):
    """DejaVu Sans at ``size`` pixels where installed, else PIL's built-in font."""
    from PIL import ImageFont
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def labelled_grid(tiles: list[tuple[str, Image.Image]], cell: int, columns: int) -> Image.Image:
    """A contact sheet: each image fitted into a ``cell``-pixel box, its label above,
    ``columns`` to a row, on white. Rows are as tall as their tallest image, so landscape
    photos leave no empty bands."""
    from PIL import ImageDraw
    columns = max(1, min(columns, len(tiles)))
    fitted = []
    for name, img in tiles:
        img = img.copy()
        img.thumbnail((cell, cell), Image.Resampling.LANCZOS)
        fitted.append((name, img))
    rows = [fitted[k:k + columns] for k in range(0, len(fitted), columns)]
    text_px = max(10, cell // 16)
    pad, label = 6, text_px + 8
    heights = [max(img.height for _, img in row) for row in rows]
    sheet = Image.new("RGB", (columns * (cell + pad) + pad,
                              sum(h + label + pad for h in heights) + pad), "white")
    draw, face = ImageDraw.Draw(sheet), font(text_px)
    y = pad
    for row, h in zip(rows, heights):
        for c, (name, img) in enumerate(row):
            x = pad + c * (cell + pad)
            draw.text((x, y + 2), name, fill="black", font=face)
            sheet.paste(img, (x, y + label))
        y += h + label + pad
    return sheet
