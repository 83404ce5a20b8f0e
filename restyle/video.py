"""Video: frames in and out, optical flow, temporal consistency, the per-frame driver.

Stylising each frame on its own makes textures shimmer: a tiny change in the input
moves the optimum (or the decoder's output) a lot. Ruder, Dosovitskiy & Brox (2016,
"Artistic style transfer for videos") carry the previous stylised frame forward
along the optical flow of the *input* frames and penalise deviations from it where
the flow can be trusted. restyle does this for every registered transfer method:

* **Flow.** OpenCV's DIS optical flow (Kroeger et al. 2016) between consecutive input
  frames, forward (t-1 -> t) and backward (t -> t-1), at the output size.
* **Consistency.** Ruder's check turns the two flows into a per-pixel weight ``c`` of
  frame t: 0 where the backward flow does not return along the forward one
  (disocclusions), at motion boundaries, and where the flow leaves the frame; 1 elsewhere.
* **Image-optimization methods** (Gatys and any method built on
  :func:`restyle.optimize.run_pyramid`): frame t starts from the warped result of
  frame t-1 where the flow is trusted (elsewhere from the method's own start, e.g. the
  photo), optimised at the final size only, with fewer iterations than the first
  frame (``frame_iterations``), and adds the short-term temporal loss
  ``temporal_weight * mean(c * (x - warp(x_{t-1}))^2)`` (Ruder's eq. 7, normalised per
  pixel and channel). The term enters through a :class:`~restyle.optimize.Guide`, a
  callback the engine's pyramid consults, so the method itself is unchanged.
* **One-pass methods** (AdaIN, WCT, style-swap, trained networks): the new output is
  blended with the warped previous output where the weight is high,
  ``y = b c warp(y_{t-1}) + (1 - b c) y_t`` with ``b = blend``: real time is kept and
  shimmer is damped; disoccluded regions show the new frame as it is.

Frames stream through (memory is flat however long the clip): each finished frame is
written losslessly to a work folder next to the output (``OUTPUT.restyle-work/``), so
an interrupted run continues with ``resume``; the output (a video with the input's
frame rate and its audio track copied packet by packet, a GIF, or a folder of PNG
frames) is written under a temporary name and renamed only when complete.

Needs the ``video`` extra: PyAV (FFmpeg) and OpenCV.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from . import fsio, imaging, run
from .errors import RestyleError
from .frames import (FLOW_PRESETS, FRAME_NAME, FRAME_SUFFIXES, VIDEO_HINT,  # noqa: F401
                     VIDEO_OUTPUTS, WORK_SUFFIX, Carry, Source, TemporalGuide, _av, _av_errors,
                     _cv2, _frames_done, _write_json, blend_carry, carry_forward,
                     check_video_output, consistency, encode, flows, frame_size, iter_frames,
                     optical_flow, output_kind, probe, warp, work_dir)
from .methods import Inputs
from .optimize import Progress
from .params import fields_of_kind, make, param, validate


# ----------------------------------------------------------------------------- settings

@dataclass
class VideoParams:
    """How a clip is stylised over time (the method's own parameters are separate)."""

    temporal: str = param("on", "temporal consistency (Ruder et al. 2016): 'off' stylises every "
                          "frame on its own", choices=("on", "off"))
    temporal_weight: float = param(2000.0, "optimization methods: weight of the short-term "
                                   "temporal loss, mean(c (x - warped previous)^2) on 0-1 RGB",
                                   min=0.0)
    frame_iterations: int = param(0, "optimization methods: iterations of each frame after the "
                                  "first, at the final size from the warped previous result "
                                  "(0: half the method's final-size iterations)",
                                  min=0, max=100000)
    blend: float = param(0.7, "one-pass methods: share of the warped previous output kept "
                         "where the flow is trusted (0: none, per-frame)", min=0.0, max=0.95)
    flow_preset: str = param("medium", "DIS optical flow preset", choices=FLOW_PRESETS)
    frames: int = param(0, "stylise only the first N frames (0: all); the audio is cut to "
                        "match", min=0)
    fps: float = param(0.0, "frame rate of a folder of frames (0: 24); video files keep "
                       "their own", min=0.0, max=1000.0)


VIDEO_PARAM_NAMES = tuple(f.name for f in dataclasses.fields(VideoParams))


def split_params(params: dict) -> tuple[VideoParams, dict]:
    """Keyword arguments split into :class:`VideoParams` (validated) and the method's."""
    mine = {k: v for k, v in params.items() if k in VIDEO_PARAM_NAMES}
    vp = make(VideoParams, **mine)
    return vp, {k: v for k, v in params.items() if k not in VIDEO_PARAM_NAMES}



# ----------------------------------------------------------------------------- the driver

@dataclass
class FrameProgress:
    """What a progress callback sees after each finished frame."""

    frame: int  # frames finished, from 1
    frames: int | None  # total, when known
    new: int  # frames stylised in this call (the rest were resumed)
    elapsed: float  # seconds in this call
    last: float  # seconds the last frame took


@dataclass
class VideoResult:
    path: Path
    frames: int
    fps: Fraction
    size: tuple[int, int]  # (w, h)
    seconds: float
    resumed: int  # frames taken over from an interrupted run
    audio: str | None  # what happened to the sound, in words


def _digest_images(images: Sequence[Image.Image]) -> list[str]:
    return [hashlib.sha1(np.asarray(i).tobytes() + repr(i.size).encode()).hexdigest()
            for i in images]


def _fingerprint(source: Source, method: str, params, vp: VideoParams, styles: list[str],
                 weights: list[float]) -> dict:
    stat = source.path.stat()
    return {"version": 1, "input": str(source.path.resolve()), "input_mtime": stat.st_mtime,
            "input_size": stat.st_size if source.kind == "file" else len(source.files),
            "method": method, "params": dataclasses.asdict(params),
            "video": {k: v for k, v in dataclasses.asdict(vp).items()},
            "styles": styles, "weights": weights}


def stylize_video(source: str | os.PathLike, styles: Sequence, output: str | os.PathLike, *,
                  method: str = "adain", style_weights: Sequence[float] | None = None,
                  resume: bool = False, overwrite: bool = False,
                  progress: Callable[[FrameProgress], None] | None = None,
                  callbacks: Sequence[Callable[[Progress], None]] = (),
                  **params) -> VideoResult:
    """Stylise every frame of ``source`` with ``method`` and write ``output``.

    ``params`` holds the method's parameters (e.g. ``size=512``) and the
    :class:`VideoParams` (``temporal="on"``, ``blend``, ``frames``, ...). Everything is
    validated before any file is written; see the module docstring for the rest.
    """
    m = run.method_for(method, "transfer", use="video")
    vp, method_params = split_params(params)
    p = make(m.Params, **method_params)
    if getattr(p, "auto", False):  # per frame it would choose, and flicker, frame by frame
        raise RestyleError("--auto is not available for video (each frame would be tuned on "
                           "its own); run restyle transfer --auto --json on one frame and "
                           "pass the chosen values")
    out = check_video_output(output, overwrite)
    kind = output_kind(out)
    _av(), _cv2()
    src = probe(source, vp.fps)
    style_list = run.as_list(styles)
    imaging.refuse_input_overwrite(out, [src.path, style_list])
    if not style_list:
        raise RestyleError("give at least one style")
    req = run.request(m, src.path, style_list, style_weights=style_weights, params=p)
    style_images, names, weights = req.style_images(), req.names, req.weights
    # a resumed run must have the same styles: their names, or their images' contents
    style_ids = _digest_images(style_images) if style_images else list(req.styles)
    sized = bool(fields_of_kind(m.Params, "size"))  # a long side (not a texture's canvas)
    w, h = frame_size(src, p.size if sized else max(src.width, src.height))
    if sized:
        p = dataclasses.replace(p, size=max(w, h))
        validate(p)
    total = min(src.frames, vp.frames) if (src.frames and vp.frames) else (vp.frames or src.frames)

    work = work_dir(out)
    frames_dir = work / "frames"
    job = _fingerprint(src, m.name, p, vp, style_ids, weights)
    if work.exists():
        if resume:
            try:
                old = json.loads((work / "job.json").read_text())
            except (OSError, ValueError):
                old = None
            if old != json.loads(json.dumps(job)):
                raise RestyleError(f"the unfinished run in {work} used other settings (input, "
                                   "style, method or options); run it with the same ones, or "
                                   "pass --overwrite to start over")
        elif overwrite:
            shutil.rmtree(work)
        else:
            raise RestyleError(f"an unfinished run is in {work}; pass --resume to continue it "
                               "or --overwrite to start over")
    frames_dir.mkdir(parents=True, exist_ok=True)
    _write_json(work / "job.json", job)
    done = _frames_done(frames_dir) if resume else 0
    start = time.perf_counter()
    try:
        count = _stylize_frames(src, m, p, vp, frames_dir, done, (w, h), style_images, weights,
                                names, total, progress, callbacks)
    except BaseException:
        if _frames_done(frames_dir) == 0:  # nothing to resume: leave nothing behind
            shutil.rmtree(work, ignore_errors=True)
        raise
    if count == 0:
        raise RestyleError(f"{src.path} has no frames")
    if count < done:
        raise RestyleError(f"the unfinished run in {work} has more frames than {src.path}")

    fps = src.fps
    duration = count / fps if (vp.frames and src.frames and count < src.frames) else None
    audio_note = None
    if kind == "folder":
        if out.exists():
            shutil.rmtree(out)
        os.replace(frames_dir, out)
    else:
        with fsio.atomic_write(out, None, suffix=out.suffix.lower()) as tmp:
            try:
                audio_note = encode(frames_dir, count, tmp, fps, src, duration)
            except _av_errors():
                if not src.audio:
                    raise
                # the container refused the copied audio stream: encode it afresh instead
                tmp.unlink(missing_ok=True)
                audio_note = encode(frames_dir, count, tmp, fps, src, duration,
                                    reencode_audio=True)
    shutil.rmtree(work, ignore_errors=True)
    if audio_note is None:
        if src.audio and kind == "video":
            audio_note = f"audio {src.audio} copied"
        elif src.audio:
            audio_note = f"audio {src.audio} dropped ({'GIF' if kind == 'gif' else 'frames'} " \
                         "have no sound)"
    return VideoResult(out, count, fps, (w, h), time.perf_counter() - start, done, audio_note)


def _stylize_frames(src: Source, m, p, vp: VideoParams, frames_dir: Path, done: int,
                    size: tuple[int, int], style_images, weights, names, total,
                    progress, callbacks) -> int:
    """The per-frame loop: frames ``done`` + 1 onwards into ``frames_dir``; returns the
    number of frames of the clip (within ``vp.frames``)."""
    w, h = size
    temporal = vp.temporal == "on"
    optimizes = m.iterates()
    start = time.perf_counter()
    prev_in: Image.Image | None = None
    prev_out: torch.Tensor | None = None
    count = 0
    for t, frame in enumerate(iter_frames(src, vp.frames)):
        frame = imaging.resize(frame, (w, h))
        count = t + 1
        if t < done:
            if temporal and t == done - 1:  # the state the next frame continues from
                prev_in = frame
                prev_out = imaging.to_tensor(imaging.load_image(
                    frames_dir / FRAME_NAME.format(t + 1), "frame"))
            continue
        t0 = time.perf_counter()
        inputs = Inputs(frame, style_images, weights, names)
        carry = None
        if temporal and prev_out is not None:
            carry = carry_forward(prev_out, prev_in, frame, vp.flow_preset)
        guide = None
        if carry is not None and optimizes:
            guide = TemporalGuide(carry, vp.temporal_weight, vp.frame_iterations)
        result = m.run(inputs, p, ([guide] if guide else []) + list(callbacks)).detach()
        if tuple(result.shape[-2:]) != (h, w):
            result = imaging.resize_tensor(result, (h, w))
        if carry is not None and (guide is None or not guide.used):
            result = blend_carry(result, carry, vp.blend)
        pil = imaging.to_pil(result)
        imaging.save_image(pil, frames_dir / FRAME_NAME.format(t + 1))
        prev_in, prev_out = frame, imaging.to_tensor(pil)
        if progress is not None:
            progress(FrameProgress(t + 1, total, t + 1 - done, time.perf_counter() - start,
                                   time.perf_counter() - t0))
    return count

