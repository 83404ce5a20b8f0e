"""Stroke control: the orientation and the size of a style's strokes.

Orientation. Gram matrices (and the channel statistics AdaIN/WCT match) are not
rotation-invariant: a painting whose strokes run at 30 degrees gives an output whose
strokes run at 30 degrees. So the style image is *rotated* so that its dominant
stroke direction (the mode of its structure-tensor orientation histogram) becomes
the requested one:

* ``stroke_angle`` (degrees, counter-clockwise from horizontal as seen on screen:
  0 horizontal strokes, 90 vertical, 45 rising to the right) rotates each style once;
* ``stroke_field`` (``etf``: the content photo's edge tangent flow, strokes follow
  the photo's edges as in Kang et al.'s NPR line drawing; or a field image) gives a
  direction per pixel. Directions are split into ``bins`` soft regions (linear
  weights between the two nearest bin centres, summing to 1), and each region is
  styled by the style rotated to its bin's angle, with the per-region machinery
  that masks already use (Gatys: :class:`~restyle.masks.Region`; one-pass methods:
  per-style masks with region statistics).

Field image encoding (``--stroke-field PATH``): the hue is twice the stroke angle
(strokes are undirected, 0 and 180 degrees are the same): red (hue 0) horizontal,
yellow-green (hue 90) rising at 45 degrees, cyan (hue 180) vertical, violet (hue 270)
falling at 45 degrees (135). Saturation times value is the confidence: grey, black
or white pixels have no direction of their own and take their neighbours'
(the field is smoothed in the doubled-angle representation). :func:`field_image`
writes a field in this encoding, e.g. a photo's ETF to start a drawing from.

Size. The fast methods paint strokes of a fixed size in *pixels* (the decoder's or the
network's), so at 4096 px they are a quarter as large, relative to the picture, as at
1024 px (the survey's Fig. 4). ``stroke_size`` S is a factor relative to the picture:
strokes S times as large as the method paints them at 1024 px, the same at any output
size. The method runs at a working size of ``1024 / S`` px (long side; one-pass methods
also encode the style there, and tile it as usual when it is large) and the result is
brought to the output size: down by area averaging, up by :func:`guided_upsample`
(bicubic plus the photo's own high frequencies where the result followed its edges).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import imaging
from .errors import RestyleError
from .params import param

#: Long side at which ``stroke_size=1`` is "the method's own look" (see module docstring).
STROKE_REFERENCE = 1024
#: Number of direction bins a stroke field is split into, by default.
FIELD_BINS = 4


# ----------------------------------------------------------------------------- parameters
# the same fields in every method that has them (GatysParams, OnePassParams)

def angle_param():
    return param("", "direction of the strokes in degrees, counter-clockwise from "
                 "horizontal (0 horizontal, 90 vertical): each style is turned so its "
                 "strokes run that way", metavar="DEG")


def field_param():
    return param("", "a stroke direction per pixel: 'etf' (along the photo's edges) or a "
                 "field image (hue = twice the angle: red horizontal, cyan vertical; grey "
                 "= no direction)", metavar="etf|FIELD", kind="field")


def bins_param():
    return param(FIELD_BINS, "with --stroke-field: how many directions the field is split "
                 "into (each a soft region with the style turned to it)", min=2, max=12)


def stretch_param():
    return param(1.5, "with --stroke-angle/--stroke-field: each style is also drawn out this "
                 "many times along the direction and squeezed as much across it, so even "
                 "a painting without one stroke direction gets it (1: rotate only)",
                 min=1.0, max=4.0)


def size_param(what: str):
    return param(0.0, f"size of the strokes relative to the picture: S times as large as "
                 f"{what} paints them at 1024 px, the same at any output size (0: off, "
                 f"strokes fixed in pixels)", min=0.0, max=16.0)


# ----------------------------------------------------------------------------- orientation

def structure_tensor(image: torch.Tensor, sigma: float = 1.0, inner: float = 1.0
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Jxx, Jxy, Jyy), each (N, 1, H, W): the structure tensor of ``image``'s luminance,
    gradients of the image blurred by ``inner`` px, products smoothed over ``sigma`` px."""
    y = imaging.luminance(image.float()) if image.shape[1] == 3 else image.float()
    y = imaging.gaussian_blur(y, inner)
    p = F.pad(y, (1, 1, 1, 1), mode="replicate")
    gx = (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2
    gy = (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2
    j = imaging.gaussian_blur(torch.cat([gx * gx, gx * gy, gy * gy], 1), sigma)
    return j[:, :1], j[:, 1:2], j[:, 2:]


def stroke_orientation(image: torch.Tensor, sigma: float = 1.5
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel: the stroke angle in degrees [0, 180) (the direction along which the
    image varies least, counter-clockwise from horizontal on screen) and its weight,
    the coherent gradient energy lambda1 - lambda2 of the structure tensor."""
    jxx, jxy, jyy = structure_tensor(image, sigma)
    # gradient direction (image y points down, so the on-screen angle flips its sign)
    grad = 0.5 * torch.atan2(2 * jxy, jxx - jyy)
    angle = torch.rad2deg(-grad + math.pi / 2) % 180.0
    energy = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy)
    return angle, energy


def orientation_histogram(image: torch.Tensor, bins: int = 36, sigma: float = 1.5
                          ) -> np.ndarray:
    """Share of the coherent gradient energy per stroke-angle bin (bin i covers
    [i, i + 1) * 180 / bins degrees); sums to 1 (all zero for a flat image)."""
    angle, energy = stroke_orientation(image, sigma)
    idx = (angle / (180.0 / bins)).long().clamp(0, bins - 1).flatten()
    hist = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx, energy.flatten().double())
    total = float(hist.sum())
    return (hist / total).numpy() if total > 0 else hist.numpy()


def dominant_angle(image: torch.Tensor) -> float:
    """The stroke angle (degrees in [0, 180)) that most of ``image``'s oriented gradient
    energy follows: the peak of its 180-bin orientation histogram, smoothed circularly."""
    small = imaging.resize_tensor(image, imaging.fit_size(*image.shape[-2:][::-1], 512)[::-1]) \
        if max(image.shape[-2:]) > 512 else image
    hist = orientation_histogram(small, 180)
    k = np.exp(-0.5 * (np.arange(-15, 16) / 5.0) ** 2)
    smooth = np.convolve(np.concatenate([hist[-15:], hist, hist[:15]]), k, mode="valid")
    return float(np.argmax(smooth)) + 0.5


def _rot(degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    return torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]],
                        dtype=torch.float32)


def rotate(image: torch.Tensor, degrees: float, fill: torch.Tensor | None = None,
           stretch: float = 1.0, along: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` (N, C, H, W) rotated counter-clockwise (on screen) by ``degrees`` about
    its centre, on a canvas of the same size, and the (N, 1, H, W) mask of the pixels
    that come from the image (1) rather than from beyond its edges (0; filled with
    ``fill``, by default the image's mean colour). With ``stretch`` k the rotated image
    is also drawn out k times along the direction ``along`` (degrees) and squeezed k
    times across it: the same area, strokes k^2 times as elongated."""
    n, c, h, w = image.shape
    # affine_grid maps output to input: the inverse map, in on-screen coordinates
    # (x right, y up), taken to y-down pixel coordinates through the flip of y
    squeeze = _rot(along) @ torch.diag(torch.tensor([1.0 / stretch, stretch])) @ _rot(-along)
    flip = torch.diag(torch.tensor([1.0, -1.0]))
    m = flip @ _rot(-degrees) @ squeeze @ flip
    scale = torch.diag(torch.tensor([w / 2.0, h / 2.0]))
    theta = torch.linalg.inv(scale) @ m @ scale
    grid = F.affine_grid(torch.cat([theta, torch.zeros(2, 1)], 1)[None].expand(n, -1, -1),
                         (n, c, h, w), align_corners=False)
    out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    valid = F.grid_sample(torch.ones(n, 1, h, w), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    valid = (valid > 0.999).float()
    if fill is None:
        fill = image.float().mean((2, 3), keepdim=True)
    return out * valid + fill * (1 - valid), valid


def inscribed_box(w: int, h: int, degrees: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the largest axis-aligned rectangle inside a w x h image rotated
    by ``degrees`` about its centre, on the same canvas (centred)."""
    a = abs(math.radians(degrees)) % math.pi
    a = min(a, math.pi - a)
    sin, cos = math.sin(a), math.cos(a)
    long, short = max(w, h), min(w, h)
    if short <= 2 * sin * cos * long or abs(sin - cos) < 1e-10:
        x = 0.5 * short  # half-constrained: two corners touch the longer sides
        wr, hr = (x / sin, x / cos) if w >= h else (x / cos, x / sin)
    else:
        cos2 = cos * cos - sin * sin
        wr, hr = (w * cos - h * sin) / cos2, (h * cos - w * sin) / cos2
    wr, hr = min(wr, w), min(hr, h)
    wr, hr = max(1, int(wr) - 2), max(1, int(hr) - 2)  # a pixel's margin for interpolation
    x0, y0 = (w - wr) // 2, (h - hr) // 2
    return x0, y0, x0 + wr, y0 + hr


def rotate_cropped(image: torch.Tensor, degrees: float, stretch: float = 1.0,
                   along: float = 0.0) -> torch.Tensor:
    """``image`` rotated by ``degrees`` (and stretched, see :func:`rotate`) and cut to the
    largest centred rectangle with no pixel from beyond its edges: the same pixel scale,
    a smaller picture."""
    if degrees % 360 == 0 and stretch == 1:
        return image
    out, inside = rotate(image, degrees, stretch=stretch, along=along)
    h, w = image.shape[-2:]
    if stretch == 1:
        x0, y0, x1, y1 = inscribed_box(w, h, degrees)
        return out[..., y0:y1, x0:x1].clamp(0, 1)
    lo, hi = 0.0, 1.0  # the largest centred box of the canvas's shape inside ``inside``
    for _ in range(12):
        t = (lo + hi) / 2
        bw, bh = max(1, int(w * t)), max(1, int(h * t))
        x0, y0 = (w - bw) // 2, (h - bh) // 2
        if float(inside[..., y0:y0 + bh, x0:x0 + bw].min()) == 1.0:
            lo = t
        else:
            hi = t
    bw, bh = max(1, int(w * lo)), max(1, int(h * lo))
    x0, y0 = (w - bw) // 2, (h - bh) // 2
    return out[..., y0:y0 + bh, x0:x0 + bw].clamp(0, 1)


def turn(style: torch.Tensor, rotation: float, target: float, stretch: float,
         crop: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A style made to paint strokes at ``target`` degrees: rotated by ``rotation`` (its
    dominant strokes to ``target``) and drawn out ``stretch`` times along ``target`` (as
    much thinner across, the same area: strokes elongated the requested way even in
    a painting without one dominant direction). With ``crop`` the largest rectangle
    without fill (and None), else the same canvas and the mask of the painted pixels."""
    if crop:
        return rotate_cropped(style, rotation, stretch, target), None
    return rotate(style, rotation, stretch=stretch, along=target)


def align_angle(style: torch.Tensor, target: float) -> float:
    """How many degrees to rotate ``style`` by so that its strokes run at ``target``
    (the smallest such rotation, in (-90, 90])."""
    d = (target - dominant_angle(style)) % 180.0
    return d - 180.0 if d > 90.0 else d


# ----------------------------------------------------------------------------- fields

def parse_angle(spec) -> float | None:
    """``--stroke-angle``: '' (none) or degrees, counter-clockwise from horizontal."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    try:
        value = float(spec)
    except (TypeError, ValueError):
        raise RestyleError(f"--stroke-angle must be a number of degrees (0 horizontal, 90 "
                           f"vertical), not {spec!r}") from None
    if not math.isfinite(value):
        raise RestyleError(f"--stroke-angle must be a finite number of degrees, not {spec!r}")
    return value % 180.0


def check_controls(angle: str, field: str) -> None:
    """One-line errors for the orientation parameters, before any work is done."""
    parse_angle(angle)
    if angle.strip() and field.strip():
        raise RestyleError("give --stroke-angle (one direction) or --stroke-field (a direction "
                           "per pixel), not both")
    if field.strip() and field.strip() != "etf":
        imaging.load_image(field.strip(), "stroke field")


def etf(photo: torch.Tensor, smooth: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge tangent flow of ``photo`` (1, 3, H, W): per pixel the direction of the photo's
    edges (the structure tensor's minor eigenvector), the tensor smoothed over ``smooth``
    px (default 1.5 % of the long side), so flat areas take the direction of the edges
    around them. Returns (angle in degrees [0, 180), confidence in [0, 1])."""
    sigma = smooth if smooth is not None else max(2.0, 0.015 * max(photo.shape[-2:]))
    jxx, jxy, jyy = structure_tensor(photo, sigma)
    grad = 0.5 * torch.atan2(2 * jxy, jxx - jyy)
    angle = torch.rad2deg(-grad + math.pi / 2) % 180.0
    aniso = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy)
    conf = aniso / (jxx + jyy).clamp_min(1e-12)
    return angle, conf.clamp(0, 1)


def load_field(src, size: tuple[int, int], smooth: float | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A field image (hue = twice the stroke angle, saturation x value = confidence; see
    the module docstring) as (angle in degrees, confidence), both (1, 1, h, w) at
    ``size`` = (h, w); pixels without a direction take their neighbours'."""
    img = imaging.to_tensor(imaging.load_image(src, "stroke field"))
    img = F.interpolate(img, size=size, mode="bilinear", align_corners=False,
                        antialias=True).clamp(0, 1)
    mx, mn = img.max(1, keepdim=True).values, img.min(1, keepdim=True).values
    chroma = mx - mn  # = saturation x value
    r, g, b = img[:, :1], img[:, 1:2], img[:, 2:]
    hue = torch.atan2(math.sqrt(3) * (g - b), 2 * r - g - b)  # radians, red = 0
    if float(chroma.max()) < 0.05:
        raise RestyleError(f"stroke field {src if isinstance(src, str) else 'image'} has no "
                           "colour: hue encodes the stroke direction (red horizontal, cyan "
                           "vertical), grey means no direction")
    sigma = smooth if smooth is not None else max(1.0, 0.01 * max(size))
    vec = imaging.gaussian_blur(torch.cat([chroma * torch.cos(hue), chroma * torch.sin(hue)], 1),
                                sigma)
    angle = (torch.rad2deg(torch.atan2(vec[:, 1:], vec[:, :1])) / 2) % 180.0
    conf = vec.norm(dim=1, keepdim=True) / imaging.gaussian_blur(chroma, sigma).clamp_min(1e-6)
    return angle, conf.clamp(0, 1)


def field_image(angle: torch.Tensor, confidence: torch.Tensor | None = None) -> torch.Tensor:
    """A field (angles in degrees, (1, 1, H, W)) as an RGB image in the field encoding:
    hue = twice the angle, value = the confidence (1 without)."""
    h = (2 * angle % 360.0) / 60.0
    v = torch.ones_like(angle) if confidence is None else confidence.clamp(0, 1)
    rgb = []
    for n in (5, 3, 1):  # the standard HSV -> RGB formula with saturation 1
        k = (n + h) % 6
        rgb.append(v - v * torch.clamp(torch.minimum(k, 4 - k), 0, 1))
    return torch.cat(rgb, 1)


def stroke_field(spec: str, photo: torch.Tensor) -> torch.Tensor:
    """The requested stroke angle per pixel (1, 1, H, W) at ``photo``'s size:
    ``etf`` or a field image."""
    size = tuple(photo.shape[-2:])
    angle, _ = etf(photo) if spec.strip() == "etf" else load_field(spec.strip(), size)
    return angle


def bin_masks(angle: torch.Tensor, bins: int) -> list[tuple[float, torch.Tensor]]:
    """Soft masks of ``bins`` direction bins centred at 0, 180/bins, ... degrees: each
    pixel's weight is split linearly between the two nearest centres (the masks sum to
    1). Returns (centre angle, mask) for the bins any pixel uses."""
    step = 180.0 / bins
    out = []
    for k in range(bins):
        d = (angle - k * step + 90.0) % 180.0 - 90.0  # signed distance, undirected
        m = (1 - d.abs() / step).clamp_min(0)
        if float(m.max()) > 1e-3:
            out.append((k * step, m))
    return out


Plan = list[list[tuple[float, float, "torch.Tensor | None"]]]


def orient(spec_angle: str, spec_field: str, bins: int, photo: torch.Tensor,
           styles: Sequence[torch.Tensor]) -> Plan | None:
    """The orientation plan: for each style, a list of (rotation in degrees for that
    style, the stroke angle it then paints, content mask or None), the same number of
    entries (direction bins) for every style. No control: None."""
    angle = parse_angle(spec_angle)
    check_controls(spec_angle, spec_field)
    if angle is not None:
        return [[(align_angle(s, angle), angle, None)] for s in styles]
    if not spec_field.strip():
        return None
    masks = bin_masks(stroke_field(spec_field, photo), bins)
    dominant = [dominant_angle(s) for s in styles]
    plan = []
    for d in dominant:
        rows = []
        for centre, m in masks:
            r = (centre - d) % 180.0
            rows.append((r - 180.0 if r > 90.0 else r, centre, m))
        plan.append(rows)
    return plan


# ----------------------------------------------------------------------------- size

def guided_upsample(low: torch.Tensor, guide: torch.Tensor, radius: int = 2,
                    eps: float = 1e-3) -> torch.Tensor:
    """``low`` (1, C, h, w) brought to ``guide``'s size (1, 3, H, W) with the guide's fine
    detail: the bicubic upsampling of ``low`` plus the guide's luminance high frequencies
    (Y - its upsampled low-resolution version) times a local gain ``a``, the slope of
    ``low`` against the guide's Y in each (2 radius + 1)^2 low-resolution window (the
    guided filter's coefficient, He et al. 2010; He & Sun 2015 for upsampling). Where the
    output followed the photo's edges they come back sharp; where it did not (painted
    areas, flat sky) nothing is added, and the strokes keep their shape."""
    size = tuple(guide.shape[-2:])
    y_hi = imaging.luminance(guide.float())
    y_lo = F.interpolate(y_hi, size=tuple(low.shape[-2:]), mode="area")

    def box(t):
        return F.avg_pool2d(F.pad(t, (radius,) * 4, mode="replicate"), 2 * radius + 1, 1)

    mi, mp = box(y_lo), box(low)
    a = (box(y_lo * low) - mi * mp) / (box(y_lo * y_lo) - mi * mi + eps)

    def up(t):
        return F.interpolate(t, size=size, mode="bicubic", align_corners=False)

    return (up(low) + up(box(a).clamp(0, 1)) * (y_hi - up(y_lo))).clamp(0, 1)


def working_side(stroke_size: float, out_side: int) -> int:
    """Long side a fast method runs at for ``stroke_size`` (0: the output's): strokes
    as the method paints them at 1024 / S px, whatever the output size."""
    if not stroke_size:
        return out_side
    side = round(STROKE_REFERENCE / stroke_size)
    return int(min(max(side, 64), 4 * out_side, imaging.MAX_SIDE))


def resample_to(out: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """A result made at a working size brought to ``photo``'s size: guided upsampling
    when it is smaller, area averaging when it is larger."""
    if tuple(out.shape[-2:]) == tuple(photo.shape[-2:]):
        return out
    if out.shape[-1] < photo.shape[-1]:
        return guided_upsample(out, photo)
    return F.interpolate(out, size=tuple(photo.shape[-2:]), mode="area").clamp(0, 1)
