"""Face integrity: does a stylised portrait still show the photo's face, undeformed?

The landmark detector (dlib, restyle/faces.py) is run on the output; the face that
overlaps the photo's face most is compared with the photo's landmarks. The mean
displacement of the 68 landmarks is reported as a fraction of the photo's
inter-ocular distance (0.1 = a tenth of the distance between the eyes), together
with whether a face was found at all. Needs ``restyle[portrait]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..faces import Face, detect_faces, main_face


@dataclass
class FaceIntegrity:
    found: bool
    #: mean landmark displacement / inter-ocular distance (nan when no face is found)
    displacement: float
    #: the worst landmark's displacement / inter-ocular distance
    worst: float


def _overlap(a: Face, b: Face) -> float:
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    iw, ih = max(0.0, min(ax1, bx1) - max(ax0, bx0)), max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    return inter / max(a.area + b.area - inter, 1e-9)


def face_integrity(output: torch.Tensor, photo_face: Face) -> FaceIntegrity:
    """Landmark displacement of ``output`` (1, 3, H, W) from ``photo_face`` (found in the
    photo at the output's size)."""
    found = [f for f in detect_faces(output) if _overlap(f, photo_face) > 0.3]
    if not found:
        return FaceIntegrity(False, math.nan, math.nan)
    face = max(found, key=lambda f: _overlap(f, photo_face))
    d = np.linalg.norm(face.landmarks - photo_face.landmarks, axis=1) / photo_face.interocular
    return FaceIntegrity(True, float(d.mean()), float(d.max()))


def photo_face_at(photo, size: tuple[int, int]) -> Face:
    """The largest face of ``photo`` (PIL image) in pixels of ``size`` (w, h)."""
    face = main_face(photo, "photo")
    return face.scaled(size[0] / photo.size[0], size[1] / photo.size[1])

