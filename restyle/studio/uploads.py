"""Uploads: size limits in bytes and pixels, decoding, and storage under server-made names.

A request body larger than ``max_request_bytes`` is refused with 413 before it is read
(by its Content-Length) or as soon as it passes the limit (chunked bodies). Each file is
then checked on its own: bytes (413), pixel count read from the header before decoding
(413), and whether it decodes at all (422). Accepted images are decoded with restyle's
one image loader and written under a name the server chooses (``content.png``,
``style-0.png``, ``mask-object_mask-0.png``); the client's file name is kept only as a
display label. The stored copy is PNG, or a JPEG of quality 95 (no chroma subsampling)
when the PNG would be more than twice the upload (a photo uploaded as JPEG), so the store
grows by about what was uploaded, not ten times that. Masks are always PNG.

Pillow's own decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is never changed: the
pixel check is done per call, on the size read from the header.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.exceptions import HTTPException

from .. import fsio, imaging


@dataclass
class Limits:
    max_request_bytes: int = 64 * 1024 * 1024
    max_file_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_styles: int = 8
    #: pixels of a job's output (its size parameter: long side squared, or W x H)
    max_job_pixels: int = 4096 * 4096


class UploadError(Exception):
    """An upload the server refuses: ``status`` is 413 (too large) or 422 (unusable)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def label(filename: str | None) -> str:
    """A client's file name reduced to a short display label (never used as a path)."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = re.sub(r"[^\w .()+-]", "_", name).strip(" .")
    return name[:80] or "upload"


def _open_checked(data: bytes, what: str, limits: Limits) -> Image.Image:
    if not data:
        raise UploadError(422, f"{what} is empty")
    if len(data) > limits.max_file_bytes:
        raise UploadError(413, f"{what} is {size_text(len(data))}; the studio accepts files "
                               f"up to {size_text(limits.max_file_bytes)}")
    too_large = UploadError(413, f"{what} has more than {limits.max_pixels / 1e6:.0f} "
                                 "megapixels, the most the studio accepts")
    try:
        with warnings.catch_warnings():
            # the header's size is checked below, per call; Pillow's process-wide limit
            # is left as it is (it still refuses what is far beyond it)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > limits.max_pixels:
            raise UploadError(413, f"{what} is {w}x{h} ({w * h / 1e6:.1f} megapixels); the "
                                   f"studio accepts up to {limits.max_pixels / 1e6:.0f} "
                                   "megapixels")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
        return ImageOps.exif_transpose(img)
    except UploadError:
        raise
    except Image.DecompressionBombError:
        raise too_large from None
    except UnidentifiedImageError:
        raise UploadError(422, f"{what} is not an image file restyle can read") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UploadError(422, f"{what} is damaged or truncated ({e})") from None


def store_image(data: bytes, what: str, path: Path, limits: Limits
                ) -> tuple[str, tuple[int, int]]:
    """Check and decode an uploaded image and store it as RGB at ``path`` (a .png name):
    PNG, or JPEG (quality 95, no chroma subsampling; the name's suffix becomes .jpg) when
    the PNG would be more than twice the upload. Returns the file name and (w, h)."""
    img = imaging.load_image(_open_checked(data, what, limits), what)
    png = imaging.image_bytes(img, "PNG")
    if len(png) > max(2 * len(data), 256 * 1024):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=95, subsampling=0)
        path, png = path.with_suffix(".jpg"), buf.getvalue()
    fsio.write_bytes(path, png)
    return path.name, img.size


def store_mask(data: bytes, what: str, path: Path, limits: Limits
               ) -> tuple[str, tuple[int, int]]:
    """Like :func:`store_image`, but transparency counts as outside the region: alpha is
    composited on black (an image loader would put it on white); always PNG."""
    img = _open_checked(data, what, limits)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    img = imaging.load_image(img, what)
    imaging.save_image(img, path)
    return path.name, img.size


def parse_json(text: str | None, what: str, kind: type, default):
    if text is None or text == "":
        return default
    try:
        value = json.loads(text)
    except ValueError as e:
        raise UploadError(422, f"{what} is not valid JSON ({e.msg})") from None
    if not isinstance(value, kind):
        raise UploadError(422, f"{what} must be a JSON {kind.__name__}")
    return value


class BodyLimit:
    """ASGI middleware: a JSON 413 for request bodies over ``max_bytes``, checked on the
    Content-Length before anything is read, and again while a body streams in."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            body = json.dumps({"error": _too_large_message(self.max_bytes)}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counting_receive, send)


def _too_large_message(max_bytes: int) -> str:
    return f"the request is too large; the studio accepts up to {size_text(max_bytes)} per request"


def size_text(n: float) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


class BodyTooLarge(HTTPException):
    """Raised from the body stream; an HTTPException, so the framework answers 413 (JSON,
    through the app's handler) instead of calling it a parse error."""

    def __init__(self, max_bytes: int):
        super().__init__(413, _too_large_message(max_bytes))
