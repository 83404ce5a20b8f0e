"""Quality metrics for a stylised output against its content and style images.

Pure functions of (1, 3, H, W) RGB tensors in [0, 1], each returning floats.
Content fidelity compares the output with the content (the output is first
resized to the content's size when they differ); style fidelity compares
feature or colour *distributions*, so the output and style sizes may differ.

=====================  =====================================  =========
metric                 measures                               better
=====================  =====================================  =========
content_distance       relative VGG feature distance          lower (0)
ssim_luminance         SSIM of the luminance (Y)              higher (1)
edge_similarity        weighted Jaccard of HED edge maps      higher (1)
gram_distance          relative Gram distance per layer       lower (0)
gaussian_wasserstein   relative W2 of Gaussian VGG stats      lower (0)
palette_distance       sliced Wasserstein in CIELAB           lower (0)
stroke_alignment       gradient energy along a stroke field   higher (1)
stroke_wavelength      dominant stroke period (spectrum)      (a size)
=====================  =====================================  =========

The two stroke metrics (:mod:`restyle.stroke`) need no content or style image:
``stroke_alignment`` takes the requested direction(s), ``stroke_wavelength`` describes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import fsio, imaging
from ..backbone import get_vgg
from ..errors import RestyleError
from ..frames import consistency, flows, iter_frames, probe, warp
from ..losses import gram_matrix, relative_mse
from ..params import ArgumentParser
from .hed import get_hed
from ..stroke import check_controls, parse_angle, stroke_field, stroke_orientation

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu4_2",)

#: Which way each scalar of ``evaluate`` improves.
DIRECTIONS = {"content_distance": "lower", "ssim_luminance": "higher",
              "edge_similarity": "higher", "gram_distance": "lower",
              "gaussian_wasserstein": "lower", "palette_distance": "lower"}


def _check(t: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[:2] != (1, 3):
        raise RestyleError(f"{what}: expected a (1, 3, H, W) tensor, "
                           f"got {tuple(getattr(t, 'shape', ()))}")
    if min(t.shape[-2:]) < 16:
        raise RestyleError(f"{what}: {t.shape[-1]}x{t.shape[-2]} is too small to evaluate "
                           "(at least 16 px a side)")
    return t.detach().float()


def _aligned(output: torch.Tensor, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both checked, the output resized to the content's size if it differs."""
    content = _check(content, "content image")
    output = imaging.resize_tensor(_check(output, "output image"), tuple(content.shape[-2:]))
    return output, content


@torch.no_grad()
def _features(image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in get_vgg()(image, list(layers)).items()}


@torch.no_grad()
def content_distance(output: torch.Tensor, content: torch.Tensor,
                     layers: Sequence[str] = CONTENT_LAYERS) -> float:
    """Relative VGG feature distance ||F(out) - F(c)||^2 / ||F(c)||^2, averaged over ``layers``.

    Measures how much of the content's semantics/layout the output keeps
    (Gatys et al.'s content loss). Lower is better; 0 for identical images.
    """
    output, content = _aligned(output, content)
    fo, fc = _features(output, layers), _features(content, layers)
    return float(np.mean([relative_mse(fo[k], fc[k]).item() for k in layers]))


def ssim_luminance(output: torch.Tensor, content: torch.Tensor) -> float:
    """SSIM (Wang et al. 2004, 7x7 window) between the luminance Y of output and content.

    Measures local structure and contrast kept, ignoring colour (which style
    transfer is meant to change). Higher is better; 1 for identical images.
    """
    from skimage.metrics import structural_similarity

    output, content = _aligned(output, content)
    yo = imaging.luminance(output)[0, 0].double().numpy()
    yc = imaging.luminance(content)[0, 0].double().numpy()
    return float(structural_similarity(yo, yc, data_range=1.0))


@torch.no_grad()
def edge_similarity(output: torch.Tensor, content: torch.Tensor) -> float:
    """Weighted Jaccard (soft IoU) sum(min(a, b)) / sum(max(a, b)) of the HED edge maps a, b.

    Measures whether the output keeps the content's edges, where they are and
    how strong: missing, blurred or moved edges lower it, and so do spurious new
    edges. Threshold-free. Higher is better; 1 for identical images, 0 for
    disjoint edge maps.
    """
    output, content = _aligned(output, content)
    hed = get_hed()
    a, b = hed(output).double(), hed(content).double()
    return float(torch.minimum(a, b).sum() / torch.maximum(a, b).sum().clamp_min(1e-12))


def _per_layer(values: dict[str, float]) -> dict[str, float]:
    return {**values, "mean": float(np.mean(list(values.values())))}


@torch.no_grad()
def style_grams(style: torch.Tensor, layers: Sequence[str] = STYLE_LAYERS
                ) -> dict[str, torch.Tensor]:
    """The style image's Gram matrices per layer, to score many outputs against it."""
    fs = _features(_check(style, "style image"), layers)
    return {k: gram_matrix(fs[k]) for k in layers}


@torch.no_grad()
def gram_distance(output: torch.Tensor, style: torch.Tensor | dict[str, torch.Tensor],
                  layers: Sequence[str] = STYLE_LAYERS) -> dict[str, float]:
    """Relative Gram distance ||G(out) - G(s)||^2 / ||G(s)||^2 per layer, plus their ``mean``.

    Measures texture/style statistics (Gatys et al.'s style loss). Lower is
    better; 0 when the Gram matrices match. ``style`` is the image or its
    :func:`style_grams` (computed once when many outputs are scored).
    """
    grams = style if isinstance(style, dict) else style_grams(style, layers)
    fo = _features(_check(output, "output image"), layers)
    return _per_layer({k: relative_mse(gram_matrix(fo[k]), grams[k]).item() for k in layers})


def _gaussian(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    f = features[0].reshape(features.shape[1], -1).double().numpy()
    mu = f.mean(1)
    fc = f - mu[:, None]
    return mu, fc @ fc.T / f.shape[1]


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(c)
    return (vecs * np.sqrt(vals.clip(min=0))) @ vecs.T


@torch.no_grad()
def gaussian_wasserstein(output: torch.Tensor, style: torch.Tensor,
                         layers: Sequence[str] = STYLE_LAYERS) -> dict[str, float]:
    """Relative Wasserstein-2 distance between Gaussians fitted to VGG features, per layer.

    Each layer's features (one C-vector per position) are summarised by their
    mean and covariance; W2^2 = |mu_o - mu_s|^2 + tr(C_o + C_s - 2 (C_s^1/2 C_o C_s^1/2)^1/2)
    (float64 NumPy, matrix roots by eigh). W2 is divided by the style features' RMS
    norm sqrt(|mu_s|^2 + tr C_s) so layers are comparable. Measures how far the
    output's feature distribution is from the style's (Mroueh 2019). Lower is
    better; 0 when the means and covariances match. Returns the layers and ``mean``.
    """
    fo = _features(_check(output, "output image"), layers)
    fs = _features(_check(style, "style image"), layers)
    result = {}
    for k in layers:
        mo, co = _gaussian(fo[k])
        ms, cs = _gaussian(fs[k])
        rs = _psd_sqrt(cs)
        cross = np.sqrt(np.linalg.eigvalsh(rs @ co @ rs).clip(min=0)).sum()
        w2 = ((mo - ms) ** 2).sum() + np.trace(co) + np.trace(cs) - 2 * cross
        scale = (ms ** 2).sum() + np.trace(cs)
        result[k] = float(np.sqrt(max(w2, 0.0) / max(scale, 1e-12)))
    return _per_layer(result)


def palette_distance(output: torch.Tensor, style: torch.Tensor, samples: int = 4096,
                     directions: int = 64, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between the pixel colours of output and style in CIELAB.

    The same number of pixels (at most ``samples``) is drawn from each image
    (fixed ``seed``), projected on ``directions`` random unit vectors of Lab
    space, and the sorted projections (quantiles) compared: the mean absolute difference is in Lab
    units (about 2.3 is a just-noticeable difference). Measures whether the
    output uses the style's palette in the style's proportions, wherever the
    colours are. Lower is better; 0 for the same colour distribution.
    """
    from skimage.color import rgb2lab

    def lab(t: torch.Tensor) -> np.ndarray:
        return rgb2lab(t[0].permute(1, 2, 0).clamp(0, 1).double().numpy()).reshape(-1, 3)

    def sample(x: np.ndarray, n: int) -> np.ndarray:  # same seed: equal images, equal samples
        return x if len(x) == n else x[np.random.default_rng(seed).choice(len(x), n, replace=False)]

    a, b = lab(_check(output, "output image")), lab(_check(style, "style image"))
    n = min(samples, len(a), len(b))  # the same number from each, so sorted lists pair up
    a, b = sample(a, n), sample(b, n)
    dirs = np.random.default_rng(seed + 1).normal(size=(3, directions))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    pa, pb = np.sort(a @ dirs, axis=0), np.sort(b @ dirs, axis=0)
    return float(np.abs(pa - pb).mean())


def _field_at(field: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """An angle field (1, 1, h, w, degrees) at ``size``, resized as doubled-angle vectors."""
    if tuple(field.shape[-2:]) == tuple(size):
        return field
    r = torch.deg2rad(2 * field.float())
    v = torch.nn.functional.interpolate(torch.cat([r.cos(), r.sin()], 1), size=tuple(size),
                                        mode="bilinear", align_corners=False)
    return (torch.rad2deg(torch.atan2(v[:, 1:], v[:, :1])) / 2) % 180.0


@torch.no_grad()
def stroke_alignment(output: torch.Tensor, angle: float | torch.Tensor,
                     tolerance: float = 22.5) -> float:
    """Share of the output's oriented gradient energy whose stroke direction (across the
    gradient) lies within ``tolerance`` degrees of ``angle``: one angle (degrees,
    counter-clockwise from horizontal) or a field of them, (1, 1, H, W) at any size.

    The per-pixel direction and energy come from the structure tensor (sigma 1.5 px)
    of the luminance; the energy is lambda1 - lambda2, so isotropic texture counts
    for nothing. Chance (directions spread evenly) is ``2 * tolerance / 180``: 0.25
    for 22.5 degrees. Higher is better when strokes are asked to follow ``angle``.
    """
    got, energy = stroke_orientation(_check(output, "output image"))
    target = (_field_at(angle, got.shape[-2:]) if isinstance(angle, torch.Tensor)
              else torch.tensor(float(angle)))
    diff = ((got - target + 90.0) % 180.0 - 90.0).abs()
    total = float(energy.sum())
    return float((energy * (diff <= tolerance)).sum()) / total if total > 0 else 0.0


def _ring_spectrum(image: torch.Tensor, edges: torch.Tensor) -> np.ndarray:
    """Mean power of the Hann-windowed luminance in rings of frequency between ``edges``
    (cycles per pixel)."""
    y = imaging.luminance(image)[0, 0].double()
    h, w = y.shape
    y = (y - y.mean()) * torch.outer(torch.hann_window(h, periodic=False, dtype=torch.float64),
                                     torch.hann_window(w, periodic=False, dtype=torch.float64))
    power = (torch.fft.rfft2(y).abs() ** 2).flatten()
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :]
    ring = torch.bucketize(torch.sqrt(fx * fx + fy * fy).flatten(), edges) - 1
    ok = (ring >= 0) & (ring < len(edges) - 1)
    sums = torch.zeros(len(edges) - 1, dtype=torch.float64).index_add_(0, ring[ok], power[ok])
    counts = torch.bincount(ring[ok], minlength=len(edges) - 1).double()
    return (sums / counts.clamp_min(1)).numpy()


def stroke_wavelength(output: torch.Tensor, content: torch.Tensor | None = None,
                      band: tuple[float, float] = (2.0, 0.125)) -> dict[str, float]:
    """Dominant stroke wavelength of an image, from its power spectrum.

    The luminance (mean removed, Hann-windowed) is Fourier transformed and its power
    averaged over 48 rings of equal log-frequency between ``band[0]`` pixels and
    ``band[1]`` times the long side. The rings' power is divided by what a photo
    would have there: the ``content`` photo's (resized to the output), or without it
    1/f^2 (natural images' power law). What remains is where the output has more
    structure than the photo: its strokes. The wavelength is 1 / the centroid of that
    excess power on a log-frequency scale. Returns ``pixels`` and ``relative`` (pixels
    / long side). Larger strokes, larger wavelength; for stripes it is their period.
    Give ``content`` for stylised photos: without it the photo's own structure
    (windows, foliage) weighs in.
    """
    output = _check(output, "output image")
    h, w = output.shape[-2:]
    lo = 1.0 / max(band[1] * max(h, w), 2 * band[0])
    edges = torch.logspace(np.log10(lo), np.log10(1.0 / band[0]), 49, dtype=torch.float64)
    centres = torch.sqrt(edges[1:] * edges[:-1]).numpy()
    spectrum = _ring_spectrum(output, edges)
    if content is not None:
        photo = imaging.resize_tensor(_check(content, "content image"), (h, w))
        base = _ring_spectrum(photo, edges)
        spectrum = spectrum / np.maximum(base, 1e-6 * base.max() + 1e-12)
    else:
        spectrum = spectrum * centres ** 2
    if spectrum.max() <= 0:
        raise RestyleError("stroke wavelength: the image is flat (no structure to measure)")
    logf = float((spectrum * np.log(centres)).sum() / spectrum.sum())
    pixels = float(np.exp(-logf))
    return {"pixels": pixels, "relative": pixels / max(h, w)}


def evaluate(output: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
             names: Sequence[str] | None = None) -> dict[str, float]:
    """The metrics ``names`` (default: all six of ``DIRECTIONS``) as a flat dict; per-layer
    metrics give their mean under their name plus ``gram_distance/relu1_1``-style entries."""
    unknown = set(names or ()) - set(DIRECTIONS)
    if unknown:
        raise RestyleError(f"unknown metric(s) {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(DIRECTIONS)}")
    against_content = {"content_distance": content_distance, "ssim_luminance": ssim_luminance,
                       "edge_similarity": edge_similarity}
    per_layer = {"gram_distance": gram_distance, "gaussian_wasserstein": gaussian_wasserstein}
    result = {}
    for name in names or DIRECTIONS:
        if name in against_content:
            result[name] = against_content[name](output, content)
        elif name in per_layer:
            layers = per_layer[name](output, style)
            result[name] = layers.pop("mean")
            result.update({f"{name}/{k}": v for k, v in layers.items()})
        else:
            result[name] = palette_distance(output, style)
    return result


def score(output: imaging.ImageLike, content: imaging.ImageLike, style: imaging.ImageLike,
          size: int = 512, names: Sequence[str] | None = None) -> dict[str, float]:
    """:func:`evaluate` on images (paths, PIL images, ...) first reduced to ``size`` px on
    the long side, as ``restyle evaluate --size`` does: the same numbers as that command."""
    return evaluate(_load(output, "output image", size), _load(content, "content image", size),
                    _load(style, "style image", size), names)


# ----------------------------------------------------------------------------- command line

def _load(src: imaging.ImageLike, what: str, long_side: int) -> torch.Tensor:
    img = imaging.load_image(src, what)
    if max(img.size) > long_side:
        img = imaging.resize(img, imaging.fit_size(*img.size, long_side))
    return imaging.to_tensor(img)


def main(argv: Sequence[str]) -> int:
    """``restyle evaluate``: metrics for one or more (output, content, style) triples."""
    import json

    if "--video" in argv:  # the temporal metrics of stylised videos (video_main)
        return video_main(argv)

    parser = ArgumentParser(
        prog="restyle evaluate",
        description="Quality metrics of stylised outputs. Repeat --output/--content/--style for "
                    "several triples (the n-th of each go together). " +
                    "; ".join(f"{k}: {v} is better" for k, v in DIRECTIONS.items()) + ". "
                    "For videos: restyle evaluate --video OUT --input IN [--style S] "
                    "(see restyle evaluate --video X --help).")
    parser.add_argument("--output", action="append", required=True, metavar="OUT",
                        help="stylised image (repeatable)")
    parser.add_argument("--content", action="append", required=True, metavar="C",
                        help="its content image (repeatable)")
    parser.add_argument("--style", action="append", required=True, metavar="S",
                        help="its style image (repeatable)")
    parser.add_argument("--size", type=int, default=512,
                        help="images larger than this long side are reduced first (default 512)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write all metrics, per layer included, as JSON")
    parser.add_argument("--stroke-angle", default="", metavar="DEG",
                        help="also report 'aligned': the share of the output's oriented "
                             "gradient energy whose strokes run within 22.5 degrees of DEG "
                             "(0 horizontal, 90 vertical; chance is 0.25); higher is better")
    parser.add_argument("--stroke-field", default="", metavar="etf|FIELD",
                        help="as --stroke-angle, against a direction per pixel: 'etf' (each "
                             "content photo's edge tangent flow) or a field image")
    parser.add_argument("--wavelength", action="store_true",
                        help="also report 'wave%%': the dominant stroke wavelength from the "
                             "power spectrum, in percent of the long side (at --size)")
    ns = parser.parse_args(argv)
    check_controls(ns.stroke_angle, ns.stroke_field)
    if not len(ns.output) == len(ns.content) == len(ns.style):
        raise RestyleError(f"got {len(ns.output)} --output, {len(ns.content)} --content and "
                           f"{len(ns.style)} --style; give one of each per triple")
    if ns.size < 16:
        raise RestyleError("--size must be at least 16")
    if ns.json:
        json_path = Path(ns.json)
        if not json_path.parent.is_dir():
            raise RestyleError(f"cannot write {json_path}: "
                               f"folder {json_path.parent} does not exist")
    rows = []
    for out, content, style in zip(ns.output, ns.content, ns.style):
        metrics = score(out, content, style, ns.size)
        if ns.stroke_angle or ns.stroke_field:
            x = _load(out, "output image", ns.size)
            target = (parse_angle(ns.stroke_angle) if ns.stroke_angle else
                      stroke_field(ns.stroke_field, _load(content, "content image", ns.size)))
            metrics["stroke_alignment"] = stroke_alignment(x, target)
        if ns.wavelength:
            wave = stroke_wavelength(_load(out, "output image", ns.size),
                                     _load(content, "content image", ns.size))
            metrics.update(stroke_wavelength=wave["pixels"], stroke_wavelength_relative=wave[
                "relative"])
        rows.append({"output": out, "content": content, "style": style, "metrics": metrics})
    short = {"content_distance": "content", "ssim_luminance": "ssim", "edge_similarity": "edges",
             "gram_distance": "gram", "gaussian_wasserstein": "w2", "palette_distance": "palette"}
    arrows = {"lower": "↓", "higher": "↑"}
    extra = {"stroke_alignment": ("aligned↑", 1.0),
             "stroke_wavelength_relative": ("wave%", 100.0)}
    extra = {k: v for k, v in extra.items() if k in rows[0]["metrics"]}
    width = max(len("output"), *(len(r["output"]) for r in rows))
    print(f"{'output':{width}s} "
          + " ".join(f"{short[k] + arrows[d]:>9s}" for k, d in DIRECTIONS.items())
          + "".join(f" {label:>9s}" for label, _ in extra.values()))
    for r in rows:
        print(f"{r['output']:{width}s} " + " ".join(f"{r['metrics'][k]:9.4f}" for k in DIRECTIONS)
              + "".join(f" {r['metrics'][k] * f:9.4f}" for k, (_, f) in extra.items()))
    if ns.json:
        fsio.write_text(json_path, json.dumps({"directions": DIRECTIONS, "results": rows},
                                              indent=2))
        print(f"wrote {json_path}")
    return 0


# ----------------------------------------------------------------------------- video

#: Width the frames are scaled to for the temporal warping error (the issue's protocol).
WARP_WIDTH = 512


def temporal_warping_error(outputs, inputs, width: int = WARP_WIDTH, preset: str = "medium",
                           frames: int = 0) -> dict:
    """Temporal warping error of a stylised video: how much it flickers along the motion.

    For each pair of consecutive frames, DIS optical flow (``preset``) is computed
    forward and backward between the *input* frames, both scaled to ``width`` pixels
    wide; Ruder et al.'s consistency check keeps the pixels the flow can be trusted
    on (see :func:`restyle.video.consistency`). The error of the pair is the mean
    squared difference between output frame t and output frame t-1 warped by that
    flow, over the trusted pixels and the three channels, on a 0-1 RGB scale, times
    1000. ``outputs`` and ``inputs`` are iterables of frames (PIL images, (H, W, 3)
    uint8 arrays or (1, 3, H, W) tensors), read one at a time; the output frames are
    scaled to the input frames' scaled size. At most ``frames`` frames (0: all).

    Returns ``{"mean": ..., "pairs": [...], "trusted": mean share of trusted pixels}``.
    Lower is better; 0 for a video that moves exactly with the flow.
    """
    def tensor(frame, size=None) -> torch.Tensor:
        img = imaging.load_image(frame, "frame")
        if size is None:
            size = (width, max(2, round(img.height * width / img.width)))
        return imaging.to_tensor(imaging.resize(img, size)), size

    pairs, trusted = [], []
    prev_in = prev_out = None
    for t, (out, inp) in enumerate(zip(outputs, inputs)):
        if frames and t >= frames:
            break
        x_in, size = tensor(inp)
        x_out, _ = tensor(out, size)
        if prev_in is not None:
            fw, bw = flows(prev_in, x_in, preset)
            c = torch.from_numpy(consistency(fw, bw))[None, None]
            warped = warp(prev_out, bw)
            denom = 3.0 * float(c.sum())
            if denom > 0:
                pairs.append(1000.0 * float((c * (x_out - warped) ** 2).sum()) / denom)
            trusted.append(float(c.mean()))
        prev_in, prev_out = x_in, x_out
    if not pairs:
        raise RestyleError("the temporal warping error needs at least two frames with "
                           "trusted motion")
    return {"mean": float(np.mean(pairs)), "pairs": pairs, "trusted": float(np.mean(trusted))}


def video_main(argv: Sequence[str]) -> int:
    """``restyle evaluate --video OUT --input IN``: temporal warping error (and, with
    ``--style``, the mean style distance of the frames) of stylised videos."""
    import json

    parser = ArgumentParser(
        prog="restyle evaluate --video",
        description="Temporal metrics of stylised videos. warp: the temporal warping error "
                    "(mean squared RGB difference, 0-1 scale, x1000, between output frame t "
                    "and output frame t-1 warped by the DIS flow of the input frames, over "
                    "the pixels Ruder's consistency check trusts; frames scaled to --width); "
                    "lower is better. gram / w2: the style distances of single frames to "
                    "--style, averaged over frames; lower is better.")
    parser.add_argument("--video", action="append", required=True, metavar="OUT",
                        help="stylised video or frame folder (repeatable)")
    parser.add_argument("--input", action="append", required=True, metavar="IN",
                        help="the input video it was made from (one for all, or one per --video)")
    parser.add_argument("--style", default=None, metavar="S",
                        help="the style image: also report the frames' style distances")
    parser.add_argument("--frames", type=int, default=0, metavar="N",
                        help="only the first N frames (0: all)")
    parser.add_argument("--width", type=int, default=WARP_WIDTH,
                        help=f"frames are scaled to this width (default {WARP_WIDTH})")
    parser.add_argument("--flow-preset", default="medium", choices=("ultrafast", "fast", "medium"),
                        help="DIS optical flow preset (default medium)")
    parser.add_argument("--style-every", type=int, default=1, metavar="K",
                        help="style distances on every K-th frame (default 1)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the results as JSON")
    ns = parser.parse_args(argv)
    if len(ns.input) not in (1, len(ns.video)):
        raise RestyleError(f"got {len(ns.video)} --video and {len(ns.input)} --input; give one "
                           "--input for all videos or one per --video")
    if ns.width < 16 or ns.frames < 0 or ns.style_every < 1:
        raise RestyleError("--width must be at least 16, --frames at least 0 and --style-every "
                           "at least 1")
    json_path = Path(ns.json) if ns.json else None
    if json_path is not None and not json_path.parent.is_dir():
        raise RestyleError(f"cannot write {json_path}: folder {json_path.parent} does not exist")
    inputs = ns.input * len(ns.video) if len(ns.input) == 1 else ns.input
    sources = [(probe(v, what="video"), probe(i, what="input video"))
               for v, i in zip(ns.video, inputs)]
    style = _load(ns.style, "style image", 512) if ns.style else None
    rows = []
    for (out_src, in_src), name in zip(sources, ns.video):
        warp_err = temporal_warping_error(iter_frames(out_src, ns.frames),
                                          iter_frames(in_src, ns.frames), ns.width,
                                          ns.flow_preset)
        row = {"video": name, "input": str(in_src.path), "warp": warp_err["mean"],
               "trusted": warp_err["trusted"], "pairs": warp_err["pairs"]}
        if style is not None:
            grams, w2s = [], []
            for t, frame in enumerate(iter_frames(out_src, ns.frames)):
                if t % ns.style_every:
                    continue
                x = imaging.to_tensor(imaging.resize(frame, imaging.fit_size(*frame.size, 512)))
                grams.append(gram_distance(x, style)["mean"])
                w2s.append(gaussian_wasserstein(x, style)["mean"])
            row.update(gram=float(np.mean(grams)), w2=float(np.mean(w2s)))
        rows.append(row)
    width = max(len("video"), *(len(r["video"]) for r in rows))
    cols = ["warp", "trusted"] + (["gram", "w2"] if style is not None else [])
    print(f"{'video':{width}s} " + " ".join(f"{c + ('' if c == 'trusted' else '↓'):>9s}"
                                            for c in cols))
    for r in rows:
        print(f"{r['video']:{width}s} " + " ".join(f"{r[c]:9.4f}" for c in cols))
    if json_path is not None:
        fsio.write_text(json_path, json.dumps({"results": rows}, indent=2))
        print(f"wrote {json_path}")
    return 0
