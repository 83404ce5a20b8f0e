"""Frames in and out, optical flow and temporal consistency: what video stylisation and
the video metrics (:mod:`restyle.evaluate.metrics`) are made of; the per-frame driver is
:mod:`restyle.video`.

* **Frames in**: :func:`probe` a video file (PyAV/FFmpeg) or a folder of frames,
  :func:`iter_frames` streams them (memory is flat however long the clip).
* **Flow**: OpenCV's DIS optical flow (Kroeger et al. 2016) between consecutive input
  frames, forward and backward (:func:`flows`), :func:`warp` along it, and Ruder et al.'s
  (2016) check, :func:`consistency`: a per-pixel weight, 0 at disocclusions, motion
  boundaries and where the flow leaves the frame.
* **Carry**: the previous stylised frame warped forward (:func:`carry_forward`), blended
  into a one-pass output (:func:`blend_carry`) or added as a temporal loss to an
  optimization (:class:`TemporalGuide`).
* **Frames out**: :func:`encode` writes a video with the input's frame rate and its audio
  track copied packet by packet, a GIF, or a folder of PNG frames, atomically.

Needs the ``video`` extra: PyAV (FFmpeg) and OpenCV.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import fsio, imaging
from .errors import RestyleError
from .optimize import Guide, Objective

VIDEO_HINT = ("pip install 'restyle[video]' (or: pip install 'av>=18.1,<19' "
              "'opencv-python-headless>=4.10,<5')")

#: Containers restyle writes, with the video codec, pixel format and encoder options.
VIDEO_OUTPUTS = {
    ".mp4": ("libx264", "yuv420p", {"crf": "18", "preset": "fast"}),
    ".m4v": ("libx264", "yuv420p", {"crf": "18", "preset": "fast"}),
    ".mov": ("libx264", "yuv420p", {"crf": "18", "preset": "fast"}),
    ".mkv": ("libx264", "yuv420p", {"crf": "18", "preset": "fast"}),
    ".webm": ("libvpx-vp9", "yuv420p", {"crf": "30", "b": "0", "deadline": "good",
                                         "cpu-used": "4", "row-mt": "1"}),
}
#: Audio codecs each container can hold as they are (copied packet by packet); any
#: other audio is re-encoded to the container's usual codec (and the result says so).
AUDIO_COPY = {
    ".mp4": {"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"},
    ".m4v": {"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"},
    ".mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    ".webm": {"opus", "vorbis"},
}
AUDIO_REENCODE = {".webm": "libopus"}  # everything else: "aac"
FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
FLOW_PRESETS = ("ultrafast", "fast", "medium")
FRAME_NAME = "frame_{:06d}.png"
_FRAME_RE = re.compile(r"frame_(\d{6})\.png")
WORK_SUFFIX = ".restyle-work"


def _av():
    try:
        import av
    except ImportError:
        raise RestyleError(f"video needs PyAV (FFmpeg) and OpenCV: {VIDEO_HINT}") from None
    return av


def _cv2():
    try:
        import cv2
    except ImportError:
        raise RestyleError(f"video needs OpenCV for optical flow: {VIDEO_HINT}") from None
    return cv2

# ----------------------------------------------------------------------------- frames in

@dataclass
class Source:
    """A probed input: a video file or a folder of frames."""

    path: Path
    kind: str  # "file" or "folder"
    width: int
    height: int
    fps: Fraction
    frames: int | None  # number of frames, when known
    audio: str | None = None  # codec of the first audio stream
    files: list[Path] = dataclasses.field(default_factory=list)  # folder frames, in order


def _natural_key(path: Path):
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def _av_errors():
    av = _av()
    return (av.FFmpegError, ValueError, OSError)


def probe(path: str | os.PathLike, fps: float = 0.0, what: str = "input video") -> Source:
    """Open ``path`` (a video file or a folder of frames) and check that it has frames.

    Raises :class:`RestyleError` with a one-line message for a missing file, a file
    that is not a video, an audio-only file, a codec FFmpeg cannot decode, or no frames.
    """
    p = Path(path)
    if not p.exists():
        raise RestyleError(f"{what} not found: {p}")
    if p.is_dir():
        files = sorted((f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                        and f.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)
        if not files:
            raise RestyleError(f"{what} folder {p} has no frames (no "
                               f"{', '.join(sorted(FRAME_SUFFIXES))} files)")
        first = imaging.load_image(files[0], "frame")
        rate = Fraction(fps or 24).limit_denominator(1001)
        return Source(p, "folder", first.width, first.height, rate, len(files), None, files)
    if p.suffix.lower() in FRAME_SUFFIXES:
        raise RestyleError(f"{what} {p} is a single image; give a video file or a folder of "
                           "frames")
    av = _av()
    try:
        container = av.open(str(p))
    except av.error.EOFError:
        raise RestyleError(f"{what} {p} has no frames (it ends before any video data)") from None
    except PermissionError:
        raise RestyleError(f"{what} {p} cannot be read: permission denied") from None
    except _av_errors():
        raise RestyleError(f"{what} {p} is not a video file restyle can read") from None
    with container:
        if not container.streams.video:
            if container.streams.audio:
                raise RestyleError(f"{what} {p} has only audio, no video stream")
            raise RestyleError(f"{what} {p} has no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except _av_errors() as e:
            raise RestyleError(f"{what} {p}: its video ({codec}) cannot be decoded "
                               f"({_short(e)})") from None
        if first is None:
            raise RestyleError(f"{what} {p} has no frames")
        rate = stream.average_rate or stream.guessed_rate or Fraction(24)
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        count = stream.frames or None
    if count is None:
        count = _count_packets(p)
    return Source(p, "file", first.width, first.height, Fraction(rate), count, audio)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:160]


def _count_packets(path: Path) -> int | None:
    """The number of video packets (frames), for containers whose header does not say."""
    av = _av()
    try:
        with av.open(str(path)) as c:
            return sum(1 for pkt in c.demux(c.streams.video[0]) if pkt.size) or None
    except _av_errors():
        return None


def iter_frames(source: Source, limit: int = 0) -> Iterator[Image.Image]:
    """The frames of ``source`` as RGB PIL images, one at a time (at most ``limit``)."""
    n = 0
    if source.kind == "folder":
        for f in source.files:
            if limit and n >= limit:
                return
            img = imaging.load_image(f, "frame")
            if img.size != (source.width, source.height):
                img = imaging.resize(img, (source.width, source.height))
            n += 1
            yield img
        return
    av = _av()
    with av.open(str(source.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if limit and n >= limit:
                    return
                n += 1
                yield frame.to_image()
        except _av_errors() as e:
            raise RestyleError(f"{source.path}: frame {n + 1} cannot be decoded "
                               f"({_short(e)})") from None


def frame_size(source: Source, long_side: int) -> tuple[int, int]:
    """(w, h) of the stylised frames: long side ``long_side``, both even (for yuv420p)."""
    w, h = imaging.fit_size(source.width, source.height, long_side)
    return max(2, w - w % 2), max(2, h - h % 2)


# ----------------------------------------------------------------------------- flow

def _gray(img: Image.Image | np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        arr = (img[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        img = Image.fromarray(arr)
    elif isinstance(img, np.ndarray):
        img = Image.fromarray(img.astype(np.uint8))
    return np.asarray(img.convert("L"))


def _dis(preset: str):
    cv2 = _cv2()
    if preset not in FLOW_PRESETS:
        raise RestyleError(f"flow preset must be one of {', '.join(FLOW_PRESETS)}, not {preset!r}")
    return cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))


def optical_flow(a, b, preset: str = "medium") -> np.ndarray:
    """DIS optical flow from image ``a`` to image ``b``: (H, W, 2) float32 (dx, dy) such that
    ``a(x) ~ b(x + flow(x))``. Images are PIL, (H, W, 3) uint8 arrays or (1, 3, H, W) tensors."""
    ga, gb = _gray(a), _gray(b)
    if ga.shape != gb.shape:
        raise ValueError(f"frames differ in size: {ga.shape} and {gb.shape}")
    return _dis(preset).calc(ga, gb, None)


def flows(previous, current, preset: str = "medium") -> tuple[np.ndarray, np.ndarray]:
    """(forward, backward) flows between two frames: previous -> current and back."""
    return optical_flow(previous, current, preset), optical_flow(current, previous, preset)


def _as_flow(flow) -> torch.Tensor:
    f = torch.as_tensor(np.asarray(flow, dtype=np.float32) if not isinstance(flow, torch.Tensor)
                        else flow).float()
    if f.ndim != 3 or f.shape[-1] != 2:
        raise ValueError(f"a flow must be (H, W, 2), not {tuple(f.shape)}")
    return f


def warp(image: torch.Tensor, flow, mode: str = "bilinear") -> torch.Tensor:
    """Backward warping: ``out(x) = image(x + flow(x))``, bilinear (or ``mode="bicubic"``),
    borders replicated.

    ``image`` is (N, C, H, W); ``flow`` is (H, W, 2) in pixels (dx, dy). To bring frame
    t-1 into frame t, pass the backward flow (t -> t-1).
    """
    f = _as_flow(flow)
    n, _, h, w = image.shape
    if tuple(f.shape[:2]) != (h, w):
        raise ValueError(f"flow {tuple(f.shape[:2])} and image {(h, w)} differ in size")
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    gx = (xs + f[..., 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + f[..., 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], -1).unsqueeze(0).expand(n, -1, -1, -1)
    return F.grid_sample(image.float(), grid, mode=mode, padding_mode="border",
                         align_corners=True)


def consistency(forward, backward) -> np.ndarray:
    """Ruder et al.'s (2016) per-pixel weight of frame t: 1 where the flow is trusted.

    ``backward`` (t -> t-1) maps each pixel x of frame t to x + b(x) in frame t-1;
    ``forward`` (t-1 -> t) should bring it back: with f~ = forward(x + b(x)), the pixel
    is *disoccluded* when |f~ + b|^2 > 0.01 (|f~|^2 + |b|^2) + 0.5, on a *motion
    boundary* when |grad b_x|^2 + |grad b_y|^2 > 0.01 |b|^2 + 0.002, and also untrusted
    when x + b(x) falls outside the frame. Those pixels get 0, the rest 1 (H, W float32).
    """
    fw, bw = _as_flow(forward), _as_flow(backward)
    h, w = bw.shape[:2]
    if tuple(fw.shape) != tuple(bw.shape):
        raise ValueError(f"forward {tuple(fw.shape)} and backward {tuple(bw.shape)} flows differ")
    ft = warp(fw.permute(2, 0, 1).unsqueeze(0), bw)[0].permute(1, 2, 0)  # f~(x) = f(x + b(x))
    occluded = (ft + bw).pow(2).sum(-1) > 0.01 * (ft.pow(2).sum(-1) + bw.pow(2).sum(-1)) + 0.5
    gy_u, gx_u = torch.gradient(bw[..., 0])
    gy_v, gx_v = torch.gradient(bw[..., 1])
    boundary = (gx_u ** 2 + gy_u ** 2 + gx_v ** 2 + gy_v ** 2) > 0.01 * bw.pow(2).sum(-1) + 0.002
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    tx, ty = xs + bw[..., 0], ys + bw[..., 1]
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    return (~(occluded | boundary | outside)).float().numpy()


@dataclass
class Carry:
    """The previous stylised frame brought into the current one, and where to trust it."""

    warped: torch.Tensor  # (1, 3, H, W) previous output warped into the current frame
    weight: torch.Tensor  # (1, 1, H, W) consistency weight in [0, 1]


def carry_forward(previous_output: torch.Tensor, previous_input, current_input,
                  preset: str = "medium") -> Carry:
    """Flow between the input frames, Ruder's check, and the warped previous output."""
    fw, bw = flows(previous_input, current_input, preset)
    c = torch.from_numpy(consistency(fw, bw))[None, None]
    # bicubic: a result carried over many frames is resampled many times; bilinear would
    # blur it a little more each time
    return Carry(warp(previous_output, bw, "bicubic").clamp(0, 1), c)


def temporal_loss(image: torch.Tensor, warped: torch.Tensor, weight: torch.Tensor
                  ) -> torch.Tensor:
    """Ruder et al.'s short-term temporal loss: mean over pixels and channels of
    ``c * (x - warped)^2`` (their eq. 7 with D = H * W * C)."""
    return (weight * (image.float() - warped).pow(2)).mean()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (N, C, H, W) tensor, reflecting at the borders."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma * sigma))
    k = (k / k.sum()).to(x)
    c = x.shape[1]
    r_x, r_y = min(r, x.shape[-1] - 1), min(r, x.shape[-2] - 1)
    kx, ky = k[r - r_x:r + r_x + 1], k[r - r_y:r + r_y + 1]
    x = F.conv2d(F.pad(x, (r_x, r_x, 0, 0), mode="reflect"),
                 kx.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r_y, r_y), mode="reflect"),
                    ky.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def blend_carry(output: torch.Tensor, carry: Carry, blend: float,
                sigma: float | None = None) -> torch.Tensor:
    """One-pass temporal consistency: blend the warped previous output into the new one,
    keeping the new one's local contrast.

    The plain blend ``mix = m warped + (1 - m) output`` with ``m = blend * c`` averages
    two textures that only partly agree, and an average of unlike textures is flatter
    than either (by sqrt(m^2 + (1 - m)^2) when they are unrelated): the style fades. So,
    as in variance-preserving texture blending (Heitz & Neyret 2018), the detail of the
    mix (``mix - blur(mix)``) is scaled by a local gain ``g`` that restores the new
    output's local detail energy, ``g = sqrt(E[detail(output)^2] / E[detail(mix)^2])``
    (local means: Gaussian of ``sigma`` px, default long side / 170), clamped to
    [sqrt(m^2 + (1 - m)^2), 1 / sqrt(m^2 + (1 - m)^2)]. Regions where the two agree are
    left as they are, and the gain works both ways, so detail carried over many frames
    cannot build up beyond what the method itself paints.
    """
    m = blend * carry.weight
    mix = m * carry.warped + (1 - m) * output
    if sigma is None:
        sigma = max(1.0, max(output.shape[-2:]) / 170)
    low = gaussian_blur(mix, sigma)
    detail = mix - low
    new_detail = output - gaussian_blur(output, sigma)
    e_new = gaussian_blur(new_detail.pow(2).mean(1, keepdim=True), sigma)
    e_mix = gaussian_blur(detail.pow(2).mean(1, keepdim=True), sigma)
    g_max = torch.rsqrt(m.pow(2) + (1 - m).pow(2))
    gain = torch.minimum(torch.maximum(torch.sqrt(e_new / (e_mix + 1e-6)), 1 / g_max), g_max)
    return (low + gain * detail).clamp(0, 1)


class TemporalGuide(Guide):
    """Steers an image-optimization method's pyramid for a frame after the first: the
    final size only, started from the warped previous result, with the temporal loss."""

    def __init__(self, carry: Carry, weight: float, iterations: int = 0):
        self.carry = carry
        self.weight = weight
        self.iterations = iterations
        self.used = False

    def _at(self, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        warped, c = self.carry.warped, self.carry.weight
        if tuple(warped.shape[-2:]) != tuple(size):
            warped = imaging.resize_tensor(warped, size)
            c = F.interpolate(c, size=size, mode="bilinear", align_corners=False)
        return warped, c

    def schedule(self, sizes, iterations):
        self.used = True
        n = self.iterations or max(1, int(iterations[-1]) // 2)
        return [tuple(sizes[-1])], [n]

    def init(self, size, image):
        # trusted pixels start from the warped previous result, the others (new content:
        # disocclusions, fast small objects) from the method's own start, so they appear
        warped, c = self._at(size)
        c = gaussian_blur(c, 1.0)
        return c * warped + (1 - c) * image

    def terms(self, size) -> Objective:
        warped, c = self._at(size)
        return Objective.term("temporal", lambda _, img: temporal_loss(img, warped, c), (),
                              self.weight)


# ----------------------------------------------------------------------------- frames out

def output_kind(path: Path) -> str:
    """'video', 'gif' or 'folder' from the output path's suffix (none: a folder of PNGs)."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_OUTPUTS:
        return "video"
    if suffix == ".gif":
        return "gif"
    if suffix == "":
        return "folder"
    raise RestyleError(f"cannot write {path}: use a video ({', '.join(VIDEO_OUTPUTS)}), a .gif, "
                       "or a folder name without extension for PNG frames")


def _is_frame_folder(path: Path) -> bool:
    return all(_FRAME_RE.fullmatch(f.name) for f in path.iterdir())


def check_video_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Validate an output path (video, GIF or frame folder) before any work is done."""
    p = fsio.check_name(path)
    output_kind(p)
    parent = p.parent
    if not parent.exists():
        raise RestyleError(f"cannot write {p}: folder {parent} does not exist")
    if not parent.is_dir():
        raise RestyleError(f"cannot write {p}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise RestyleError(f"cannot write {p}: folder {parent} is not writable")
    if p.exists():
        if not overwrite:
            raise RestyleError(f"{p} already exists; pass --overwrite (overwrite=True) to "
                               "replace it")
        if p.is_dir() and output_kind(p) != "folder":
            raise RestyleError(f"cannot write {p}: it is a folder")
        if p.is_dir() and not _is_frame_folder(p):
            raise RestyleError(f"{p} is a folder with other files in it; restyle only replaces "
                               "a folder of its own frame_NNNNNN.png files")
        if not p.is_dir() and output_kind(p) == "folder":
            raise RestyleError(f"cannot write frames into {p}: it is a file")
    fsio.check_writable(p)  # the output's own name, and its work folder's, must fit
    fsio.check_writable(work_dir(p), clean=False)
    return p


def work_dir(output: Path) -> Path:
    """The folder next to ``output`` that holds an unfinished run (frames, settings)."""
    return output.with_name(output.name + WORK_SUFFIX)


def _frames_done(frames: Path) -> int:
    """How many consecutive frames (from the first) are finished in ``frames``."""
    n = 0
    while (frames / FRAME_NAME.format(n + 1)).exists():
        n += 1
    return n


def _write_json(path: Path, data: dict) -> None:
    fsio.write_text(path, json.dumps(data, indent=2, sort_keys=True))


def _frame_files(frames: Path, count: int) -> Iterator[np.ndarray]:
    for i in range(1, count + 1):
        yield np.asarray(imaging.load_image(frames / FRAME_NAME.format(i), "frame"))


def _gif_palette(frames: Path, count: int) -> Image.Image:
    """One palette for the whole GIF, from up to 16 frames: colours do not jump between
    frames, and unchanged regions dither the same way in every frame."""
    picks = sorted({round(i * (count - 1) / 15) for i in range(16)}) if count > 1 else [0]
    tiles = []
    for i in picks:
        img = imaging.load_image(frames / FRAME_NAME.format(i + 1), "frame")
        img.thumbnail((160, 160))
        tiles.append(np.asarray(img))
    width = max(t.shape[1] for t in tiles)
    sheet = np.concatenate([np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0)), mode="edge")
                            for t in tiles])
    return Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT)


def encode(frames: Path, count: int, out: Path, fps: Fraction, source: Source | None,
           duration: float | None, reencode_audio: bool = False) -> str | None:
    """Encode the PNG frames into ``out`` (a video or GIF), streaming; a video gets the
    source's audio (copied, or re-encoded when the container cannot hold its codec or
    ``reencode_audio``), cut to ``duration`` seconds. Returns a note about the audio
    when it was re-encoded, else None."""
    av = _av()
    kind = output_kind(out)
    suffix = out.suffix.lower()
    container = av.open(str(out), "w")
    note = None
    src = None
    try:
        first = imaging.load_image(frames / FRAME_NAME.format(1), "frame")
        if kind == "gif":
            vs = container.add_stream("gif", rate=fps)
            vs.pix_fmt = "pal8"
            palette_img = _gif_palette(frames, count)
            pal = np.asarray(palette_img.getpalette()[:768], np.uint8).reshape(-1, 3)
            pal = np.concatenate([pal, np.zeros((256 - len(pal), 3), np.uint8)])
            argb = np.concatenate([np.full((256, 1), 255, np.uint8), pal], 1)
        else:
            codec, pix_fmt, options = VIDEO_OUTPUTS[suffix]
            vs = container.add_stream(codec, rate=fps, options=dict(options))
            vs.pix_fmt = pix_fmt
        vs.width, vs.height = first.size
        a_in = a_out = None
        if kind == "video" and source is not None and source.audio and source.kind == "file":
            src = av.open(str(source.path))
            a_in = src.streams.audio[0]
            if not reencode_audio and source.audio in AUDIO_COPY.get(suffix, {source.audio}):
                a_out = container.add_stream_from_template(a_in)
            else:
                name = AUDIO_REENCODE.get(suffix, "aac")
                a_out = container.add_stream(name, rate=a_in.codec_context.sample_rate
                                             if name == "aac" else 48000)
                note = (f"audio re-encoded from {source.audio} to {name} ({suffix} cannot "
                        f"hold {source.audio} as it is)")
        time_base = 1 / Fraction(fps)
        for i, arr in enumerate(_frame_files(frames, count)):
            if kind == "gif":
                q = Image.fromarray(arr).quantize(palette=palette_img,
                                                  dither=Image.Dither.FLOYDSTEINBERG)
                frame = av.VideoFrame.from_ndarray((np.asarray(q), argb), format="pal8")
            else:
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts, frame.time_base = i, time_base
            container.mux(vs.encode(frame))
        container.mux(vs.encode())
        if a_in is not None:
            _copy_audio(src, a_in, a_out, copy=note is None, duration=duration, container=container)
    except BaseException:
        container.close()
        if src is not None:
            src.close()
        out.unlink(missing_ok=True)
        raise
    container.close()
    if src is not None:
        src.close()
    return note


def _copy_audio(src, a_in, a_out, copy: bool, duration: float | None, container) -> None:
    """The source's first audio stream into ``a_out``: packets as they are (``copy``) or
    decoded and re-encoded; packets starting at or after ``duration`` s are dropped."""
    tb = a_in.time_base
    start = a_in.start_time or 0
    end = None if duration is None else start + int(duration / tb)
    for packet in src.demux(a_in):
        if packet.dts is None:  # the demuxer's final flush packet
            continue
        if end is not None and packet.pts is not None and packet.pts >= end:
            continue
        if copy:
            packet.stream = a_out
            container.mux(packet)
        else:
            for frame in packet.decode():
                frame.pts = None
                container.mux(a_out.encode(frame))
    if not copy:
        container.mux(a_out.encode())
