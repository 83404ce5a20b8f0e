"""Faces: detection and 68 landmarks (dlib), landmark-driven warps, local colour statistics.

The portrait method (Selim, Elgharib & Doyle 2016) needs a dense correspondence
between a painted head and a photographed one. Here it is built from the 68
iBUG landmarks that dlib's shape predictor finds in both images:

* :func:`detect_faces` finds every frontal face and its landmarks. Detection runs
  at a working size whose long side is between 512 and 1024 pixels (small images
  are enlarged, large ones reduced), so faces are found the same way whatever the
  input size; the landmarks are returned in the input's own pixels.
* :class:`FaceWarp` is a piecewise-affine map over a Delaunay triangulation of the
  landmarks, forehead points, a ring around the face and points on the frame. Near
  the face it maps every landmark exactly onto its partner; towards the frame it
  blends into the similarity transform (scale, rotation, shift) that best aligns the
  two faces, so the whole frame is covered smoothly and the background moves rigidly.
* :func:`local_color_transfer` gives an image the local colour mean and contrast of
  a (warped) reference: the colour part of transferring local statistics.

Pixel coordinates are (x, y) with the centre of pixel (i, j) at x = j, y = i, as
dlib reports them. dlib and the landmark model are optional dependencies
(``restyle[portrait]``); without them :func:`require_dlib` says how to install them.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import imaging
from .errors import RestyleError

log = logging.getLogger("restyle")

#: the one command that installs what the portrait method needs
PORTRAIT_HINT = ("pip install 'restyle[portrait]' (or: pip install dlib-bin==20.0.1.post1 "
                 "face-recognition-models==0.3.0)")
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"

# index ranges of the 68-point (iBUG 300-W) markup
JAW = slice(0, 17)
BROWS = slice(17, 27)
NOSE = slice(27, 36)
RIGHT_EYE = slice(36, 42)  # the subject's right eye: on the left of the image
LEFT_EYE = slice(42, 48)
MOUTH = slice(48, 68)
CHIN = 8


# ----------------------------------------------------------------------------- dlib

def require_dlib():
    """The dlib module, or a RestyleError that names the install command."""
    try:
        import dlib
    except ImportError:
        raise RestyleError("the portrait method needs dlib and its face landmark model, which "
                           f"are not installed; run: {PORTRAIT_HINT}") from None
    return dlib


def model_file(name: str = LANDMARKS_68) -> Path:
    """Path of a model file of the ``face-recognition-models`` package.

    Found with importlib (the package's own ``__init__`` needs ``pkg_resources``,
    which recent setuptools no longer ship), so importing it is never needed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RestyleError("the portrait method needs the face landmark model of "
                           f"face-recognition-models, which is not installed; run: {PORTRAIT_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise RestyleError(f"the face model file {path} is missing; reinstall it: {PORTRAIT_HINT}")
    return path


@functools.lru_cache(maxsize=1)
def _models():
    dlib = require_dlib()
    path = model_file(LANDMARKS_68)
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


# ----------------------------------------------------------------------------- detection

@dataclass
class Face:
    """One detected face: its box (x0, y0, x1, y1), detector score and 68 landmarks
    (68, 2) as (x, y) in the pixels of the image it was found in."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres of the eye on the image's left and on its right."""
        return self.landmarks[RIGHT_EYE].mean(0), self.landmarks[LEFT_EYE].mean(0)

    @property
    def interocular(self) -> float:
        """Distance between the eye centres, the face's natural unit of length."""
        a, b = self.eyes
        return float(np.linalg.norm(b - a))

    def scaled(self, sx: float, sy: float) -> "Face":
        """The same face in an image resized by (sx, sy)."""
        return Face(_scale_box(self.box, sx, sy), self.score, scale_points(self.landmarks, sx, sy))


def scale_points(points: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Pixel-centre coordinates in an image resized by (sx, sy): x' = (x + 1/2) sx - 1/2."""
    p = np.asarray(points, np.float64)
    return np.stack([(p[:, 0] + 0.5) * sx - 0.5, (p[:, 1] + 0.5) * sy - 0.5], 1)


def _scale_box(box, sx, sy):
    x0, y0, x1, y1 = box
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


def _as_uint8(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = imaging.to_pil(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        return np.asarray(imaging.load_image(arr))
    return arr


def detect_faces(image, min_side: int = 512, max_side: int = 1024, upsample: int = 1
                 ) -> list[Face]:
    """Every frontal face in ``image`` with its 68 landmarks, the largest first.

    ``image`` is a PIL image, an (H, W, 3) uint8 array or a (1, 3, H, W) tensor in
    [0, 1]. Detection (dlib's HOG detector, ``upsample`` times enlarged internally)
    and landmark fitting run at a working size whose long side lies in
    [``min_side``, ``max_side``]; the results are in ``image``'s pixels.
    """
    detector, predictor = _models()
    arr = _as_uint8(image)
    h, w = arr.shape[:2]
    long_side = max(h, w)
    target = min(max(long_side, min_side), max_side)
    if target != long_side:
        ww, hh = imaging.fit_size(w, h, target)
        work = np.asarray(imaging.resize(Image.fromarray(arr), (ww, hh)))
    else:
        work = arr
    work = np.ascontiguousarray(work)
    rects, scores, _ = detector.run(work, upsample, 0.0)
    if not rects:  # small or stylised faces: look once more at twice the resolution
        rects, scores, _ = detector.run(work, upsample + 1, 0.0)
    sx, sy = w / work.shape[1], h / work.shape[0]
    faces = []
    for rect, score in zip(rects, scores):
        shape = predictor(work, rect)
        pts = np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                       np.float64)
        box = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
        faces.append(Face(box, float(score), pts).scaled(sx, sy))
    return sorted(faces, key=lambda f: f.area, reverse=True)


def main_face(image, what: str) -> Face:
    """The largest face in ``image`` (a note when there are several); a RestyleError
    that suggests plain transfer when there is none. ``what`` names the image."""
    faces = detect_faces(image)
    if not faces:
        raise RestyleError(f"no face found in the {what}; the portrait method needs a frontal "
                           "face in both the photo and the painting (use --method gatys for "
                           "other images)")
    if len(faces) > 1:
        x0, y0, x1, y1 = faces[0].box
        log.warning(f"note: {len(faces)} faces found in the {what}; using the largest "
                    f"({x1 - x0:.0f} px wide at x={x0:.0f}, y={y0:.0f})")
    return faces[0]


# ----------------------------------------------------------------------------- warping

def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform (scale, rotation, shift) that maps ``src`` points
    closest to ``dst`` in the least-squares sense (Umeyama 1991, no reflection)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    cov = b.T @ a / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(s) @ d) / max(a.var(0).sum(), 1e-12))
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = md - scale * rot @ ms
    return m


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def forehead_points(landmarks: np.ndarray, height: float = 0.45) -> np.ndarray:
    """Points on the forehead, which the 68-point markup leaves out: the eyebrow
    points moved up (away from the chin) by ``height`` times the brow-to-chin distance."""
    brows = landmarks[BROWS]
    up = brows.mean(0) - landmarks[CHIN]
    return brows + height * up


def face_outline(landmarks: np.ndarray) -> np.ndarray:
    """Jaw line and forehead points: a closed outline of the whole face."""
    return np.concatenate([landmarks[JAW], forehead_points(landmarks)[::-1]])


def face_mask(landmarks: np.ndarray, size: tuple[int, int], feather: float = 0.0
              ) -> torch.Tensor:
    """(1, 1, h, w) mask of the face inside :func:`face_outline` (jaw line and forehead),
    its edge softened by a Gaussian of ``feather`` pixels."""
    from PIL import ImageDraw

    h, w = size
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).polygon([(float(x), float(y)) for x, y in face_outline(landmarks)],
                                fill=255)
    mask = torch.from_numpy(np.asarray(img, np.float32) / 255.0)[None, None]
    return gaussian_blur(mask, feather).clamp(0, 1) if feather > 0 else mask


class FaceWarp:
    """A piecewise-affine map of a source image (the painting) onto a destination
    frame (the photo's geometry), driven by corresponding face landmarks.

    Control points (destination -> source): the 68 landmarks and the forehead points
    (each image's own, so they correspond), a ring around the face at ``ring`` times
    its outline's distance from the centre and points along the destination frame,
    both mapped by the similarity transform fitted to the landmarks. A Delaunay
    triangulation of the destination points makes the map affine in each triangle:
    exact at every landmark, rigid towards the frame, continuous everywhere.
    """

    def __init__(self, src_landmarks: np.ndarray, dst_landmarks: np.ndarray,
                 size: tuple[int, int], ring: float = 1.6, frame_points: int = 5):
        from scipy.spatial import Delaunay

        self.size = (int(size[0]), int(size[1]))  # (h, w) of the destination
        h, w = self.size
        src, dst = np.asarray(src_landmarks, np.float64), np.asarray(dst_landmarks, np.float64)
        self.similarity = similarity_fit(dst, src)  # destination -> source
        dst_face = np.concatenate([dst, forehead_points(dst)])
        src_face = np.concatenate([src, forehead_points(src)])
        outline = face_outline(dst)
        centre = outline.mean(0)
        ring_pts = centre + ring * (outline - centre)
        t = np.linspace(0, 1, frame_points)[:-1]
        frame = np.concatenate([np.stack([t * (w - 1), np.zeros_like(t)], 1),
                                np.stack([np.full_like(t, w - 1), t * (h - 1)], 1),
                                np.stack([(1 - t) * (w - 1), np.full_like(t, h - 1)], 1),
                                np.stack([np.zeros_like(t), (1 - t) * (h - 1)], 1)])
        inside = (ring_pts[:, 0] > 0) & (ring_pts[:, 0] < w - 1) & \
                 (ring_pts[:, 1] > 0) & (ring_pts[:, 1] < h - 1)
        rigid = np.concatenate([ring_pts[inside], frame])
        self.dst_points = np.concatenate([dst_face, rigid])
        self.src_points = np.concatenate([src_face, apply_affine(self.similarity, rigid)])
        # drop coincident destination points (a degenerate triangulation otherwise)
        _, keep = np.unique(np.round(self.dst_points, 6), axis=0, return_index=True)
        keep = np.sort(keep)
        self.dst_points, self.src_points = self.dst_points[keep], self.src_points[keep]
        self.triangulation = Delaunay(self.dst_points)

    def map(self, points: np.ndarray) -> np.ndarray:
        """Source positions of destination ``points`` (N, 2); outside the triangulation
        (beyond the frame) the similarity transform applies."""
        pts = np.asarray(points, np.float64)
        tri = self.triangulation
        simplex = tri.find_simplex(pts)
        out = apply_affine(self.similarity, pts)
        ok = simplex >= 0
        if ok.any():
            s = simplex[ok]
            trans = tri.transform[s]  # (n, 3, 2): inverse matrix and offset
            b = np.einsum("nij,nj->ni", trans[:, :2], pts[ok] - trans[:, 2])
            bary = np.concatenate([b, 1 - b.sum(1, keepdims=True)], 1)
            corners = self.src_points[tri.simplices[s]]  # (n, 3, 2)
            out[ok] = np.einsum("ni,nij->nj", bary, corners)
        return out

    def grid(self) -> np.ndarray:
        """Source (x, y) of every destination pixel: (h, w, 2)."""
        h, w = self.size
        yy, xx = np.mgrid[0:h, 0:w]
        pts = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
        return self.map(pts).reshape(h, w, 2)

    def coverage(self, source_size: tuple[int, int], soft: float = 4.0) -> torch.Tensor:
        """(1, 1, h, w): 1 where a destination pixel comes from inside the source image
        (of ``source_size`` (h, w)), 0 where it falls outside, ramping over ``soft``
        source pixels at the border."""
        hs, ws = source_size
        g = self.grid()
        inside = np.minimum.reduce([g[..., 0] + 0.5, ws - 0.5 - g[..., 0],
                                    g[..., 1] + 0.5, hs - 0.5 - g[..., 1]])
        return torch.from_numpy(np.clip(inside / max(soft, 1e-6), 0, 1)).float()[None, None]

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` (N, C, Hs, Ws) warped into the destination frame (N, C, h, w):
        bilinear, mirrored at the source's borders."""
        hs, ws = image.shape[-2:]
        g = torch.from_numpy(self.grid()).float()
        # pixel centres to grid_sample's [-1, 1] (align_corners=False)
        gx = (2 * g[..., 0] + 1) / ws - 1
        gy = (2 * g[..., 1] + 1) / hs - 1
        grid = torch.stack([gx, gy], -1).unsqueeze(0).expand(image.shape[0], -1, -1, -1)
        return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)


def warp_face(source: torch.Tensor, src_face: Face, dst_face: Face, size: tuple[int, int]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``source`` (1, 3, H, W, the painting) warped so that its face takes the geometry of
    ``dst_face`` in a frame of ``size`` (h, w), and its coverage (1, 1, h, w): 1 where
    the warped pixels come from inside the source, 0 where the frame reaches beyond it
    (there the source is mirrored). The source is first resized (with antialiasing)
    so its face is as large as the destination's, then warped."""
    scale = math.sqrt(abs(np.linalg.det(similarity_fit(src_face.landmarks,
                                                         dst_face.landmarks)[:, :2])))
    hs, ws = source.shape[-2:]
    nh, nw = max(8, round(hs * scale)), max(8, round(ws * scale))
    if (nh, nw) != (hs, ws) and scale < 1:
        source = imaging.resize_tensor(source, (nh, nw))
        src_face = src_face.scaled(nw / ws, nh / hs)
    warp = FaceWarp(src_face.landmarks, dst_face.landmarks, size)
    return warp.apply(source).clamp(0, 1), warp.coverage(tuple(source.shape[-2:]))


# ----------------------------------------------------------------------------- colour

def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with mirrored borders."""
    if sigma <= 0:
        return x
    radius = max(1, min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-t * t / (2 * sigma * sigma))
    k = (k / k.sum()).to(x)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"),
                 k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"),
                    k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def local_color_transfer(image: torch.Tensor, reference: torch.Tensor, sigma: float,
                         mask: torch.Tensor | None = None,
                         gain_range: tuple[float, float] = (0.5, 2.0)) -> torch.Tensor:
    """Give ``image`` the local colour statistics of ``reference`` (same size, aligned).

    In YIQ, each channel's local mean and standard deviation are measured in Gaussian
    windows of ``sigma`` pixels; the image's local deviations from its own mean are
    scaled by the ratio of standard deviations (clamped to ``gain_range``) and added
    to the reference's local mean: out = mu_r + clamp(sigma_r / sigma_i) (x - mu_i).
    Where the two are aligned faces, skin takes the painted skin's colour, hair the
    painted hair's. ``mask`` (1, 1, H, W) weighs the reference's pixels (0 = not
    valid, e.g. beyond the painting's edge): its local statistics are then taken from
    valid pixels only, and far from any valid pixel the transfer becomes a global one
    (the image's overall mean and contrast to those of the valid reference pixels),
    which keeps the image's own large-scale structure there.
    """
    x, r = imaging.rgb_to_yiq(image.float()), imaging.rgb_to_yiq(reference.float())
    m = torch.ones_like(r[:, :1]) if mask is None else mask.float().to(r)

    def stats(t, wts):
        wsum = gaussian_blur(wts, sigma).clamp_min(1e-6)
        mu = gaussian_blur(wts * t, sigma) / wsum
        var = (gaussian_blur(wts * t * t, sigma) / wsum - mu * mu).clamp_min(0)
        return mu, var.sqrt(), wsum

    mx, sx, _ = stats(x, torch.ones_like(m))
    mr, sr, support = stats(r, m)
    if mask is not None:  # far from valid pixels: global statistics on both sides
        total = m.sum().clamp_min(1e-6)
        gm = (m * r).sum((2, 3), keepdim=True) / total
        gs = ((m * (r - gm) ** 2).sum((2, 3), keepdim=True) / total).sqrt()
        conf = (support / 0.5).clamp(0, 1)
        mr = conf * mr + (1 - conf) * gm
        sr = conf * sr + (1 - conf) * gs
        mx = conf * mx + (1 - conf) * x.mean((2, 3), keepdim=True)
        sx = conf * sx + (1 - conf) * x.std((2, 3), keepdim=True)
    gain = (sr + 1e-3) / (sx + 1e-3)
    out = mr + gain.clamp(*gain_range) * (x - mx)
    return imaging.yiq_to_rgb(out).clamp(0, 1)
