"""Portrait transfer (Selim et al. 2016): gain maps, the landmark warp, face detection,
the no-face and missing-dependency paths, and a small end-to-end run."""

import logging
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle import cli, faces, imaging
from restyle.errors import RestyleError
from restyle.methods.portrait import gain_map, gain_target

from .conftest import shared, stripes


def has_dlib() -> bool:
    try:
        faces.require_dlib()
        faces.model_file()
    except RestyleError:
        return False
    return True


needs_dlib = pytest.mark.skipif(not has_dlib(), reason="dlib / face-recognition-models not "
                                "installed (pip install 'restyle[portrait]')")


def template_landmarks(cx=0.0, cy=0.0, scale=1.0, angle=0.0) -> np.ndarray:
    """A face-like 68-point (iBUG) layout: jaw, brows, nose, eyes, mouth; face ~2*scale wide."""
    jaw_t = np.linspace(-0.9 * math.pi, -0.1 * math.pi, 17)
    jaw = np.stack([np.cos(jaw_t), -1.1 * np.sin(jaw_t) - 0.1], 1)[::-1] * [-1, 1]
    brow = lambda x0: np.stack([np.linspace(x0, x0 + 0.6, 5),
                                -0.45 - 0.08 * np.sin(np.linspace(0, math.pi, 5))], 1)
    nose = np.concatenate([np.stack([np.zeros(4), np.linspace(-0.3, 0.15, 4)], 1),
                           np.stack([np.linspace(-0.2, 0.2, 5), np.full(5, 0.25)], 1)])
    et = np.linspace(0, 2 * math.pi, 7)[:-1]
    eye = lambda x: np.stack([x - 0.18 * np.cos(et), -0.25 - 0.07 * np.sin(et)], 1)
    mt = np.linspace(0, 2 * math.pi, 13)[:-1]
    it = np.linspace(0, 2 * math.pi, 9)[:-1]
    mouth = np.concatenate([np.stack([-0.4 * np.cos(mt), 0.6 - 0.15 * np.sin(mt)], 1),
                            np.stack([-0.25 * np.cos(it), 0.6 - 0.05 * np.sin(it)], 1)])
    pts = np.concatenate([jaw, brow(-0.75), brow(0.15), nose, eye(-0.4), eye(0.4), mouth])
    assert pts.shape == (68, 2)
    c, s = math.cos(angle), math.sin(angle)
    return pts @ np.array([[c, s], [-s, c]]) * scale + [cx, cy]


def dots(points: np.ndarray, size: tuple[int, int], sigma: float = 0.7) -> torch.Tensor:
    """An image with a small Gaussian dot at each point: (1, 3, h, w)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w))
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma * sigma))
    return torch.from_numpy(np.clip(img, 0, 1)).float()[None, None].expand(1, 3, h, w)


# ----------------------------------------------------------------------------- gain maps

def test_gain_map_is_the_clamped_ratio():
    photo = torch.tensor([1.0, 1.0, 1.0, 2.0, 0.0]).view(1, 5, 1, 1)
    example = torch.tensor([2.0, 10.0, 0.1, 3.0, 0.0]).view(1, 5, 1, 1)
    g = gain_map(photo, example, 0.7, 5.0).flatten()
    assert torch.allclose(g[:4], torch.tensor([2.0, 5.0, 0.7, 1.5]), atol=1e-3)
    assert g[4] == 1.0  # both zero: a dead unit stays as it is
    assert g.min() >= torch.tensor(0.7) and g.max() <= torch.tensor(5.0)
    # the target follows: photo * gain, never more than 5x nor less than 0.7x the photo
    t = gain_target(photo, example, 0.7, 5.0).flatten()
    assert torch.allclose(t, torch.tensor([2.0, 5.0, 0.7, 3.0, 0.0]), atol=2e-3)


def test_gain_map_is_identity_when_painting_equals_photo(vgg):
    img = imaging.to_tensor(Image.fromarray(stripes(64)))
    feats = vgg(img, ["relu3_1", "relu4_1"])
    for f in feats.values():
        assert torch.equal(gain_map(f, f), torch.ones_like(f))
        assert torch.allclose(gain_target(f, f), f.float(), rtol=1e-6, atol=0)


def test_gain_falls_back_to_one_where_the_painting_does_not_reach():
    photo = torch.rand(1, 8, 6, 6) + 0.5
    example = photo * 3
    cover = torch.zeros(1, 1, 6, 6)
    cover[..., :3] = 1.0  # the painting covers the left half only
    t = gain_target(photo, example, coverage=cover)
    assert torch.allclose(t[..., :3], 3 * photo[..., :3], rtol=1e-3)
    assert torch.allclose(t[..., 3:], photo[..., 3:])


# ----------------------------------------------------------------------------- the warp

def test_similarity_fit_recovers_a_similarity():
    src = template_landmarks(50, 60, 30)
    dst = template_landmarks(120, 90, 45, angle=0.2)
    m = faces.similarity_fit(src, dst)
    assert np.abs(faces.apply_affine(m, src) - dst).max() < 1e-6


def test_warp_maps_every_landmark_onto_its_partner():
    src = template_landmarks(90, 100, 50, angle=-0.1)
    dst = template_landmarks(140, 120, 70, angle=0.15)
    dst[36:48] += [0, 3]  # a non-rigid change: the eyes sit lower
    dst[48:68, 0] *= 1.05  # a wider mouth
    warp = faces.FaceWarp(src, dst, (256, 256))
    assert np.abs(warp.map(dst) - src).max() < 1e-6
    # towards the frame the map is the best similarity: rigid, no folds
    corners = np.array([[0.0, 0.0], [255.0, 255.0]])
    assert np.abs(warp.map(corners) - faces.apply_affine(warp.similarity, corners)).max() < 1e-6


def test_warped_image_puts_the_painting_landmarks_on_the_photo_landmarks():
    """Dots drawn at the source landmarks end up at the destination landmarks."""
    src = template_landmarks(100, 110, 60)
    dst = template_landmarks(130, 125, 80, angle=0.1)
    dst[17:27, 1] -= 4  # raised eyebrows
    warped = faces.FaceWarp(src, dst, (256, 256)).apply(dots(src, (220, 220)))[0, 0].numpy()
    yy, xx = np.mgrid[0:256, 0:256]
    errors = []
    for x, y in dst:
        win = (np.abs(xx - x) <= 2.5) & (np.abs(yy - y) <= 2.5)
        wgt = warped * win
        cx, cy = (wgt * xx).sum() / wgt.sum(), (wgt * yy).sum() / wgt.sum()
        errors.append(math.hypot(cx - x, cy - y))
    # sub-pixel: a half-pixel slip in the coordinate conventions fails the mean
    assert np.mean(errors) < 0.1 and max(errors) < 0.35, f"{np.mean(errors):.2f} px off"


def test_face_mask_covers_the_face_and_forehead_only():
    lm = template_landmarks(64, 70, 30)
    mask = faces.face_mask(lm, (128, 128))[0, 0]
    for x, y in lm[27:68]:  # nose, eyes, mouth
        assert mask[round(y), round(x)] == 1.0
    brow_top = lm[17:27, 1].min()
    assert mask[round(brow_top) - 5, 64] == 1.0  # the forehead is in
    assert mask[2, 2] == 0.0 and mask[125, 125] == 0.0
    soft = faces.face_mask(lm, (128, 128), feather=4.0)[0, 0]
    assert 0.0 < float(soft[round(lm[0, 1]), round(lm[0, 0]) - 2]) < 1.0  # a soft edge


def test_local_color_transfer_takes_the_reference_colours_in_place():
    h = w = 64
    photo = torch.full((1, 3, h, w), 0.5)
    photo[..., :, :32] = 0.3
    ref = torch.zeros(1, 3, h, w)
    ref[:, 0, :, :32] = 0.8  # red on the left, blue on the right
    ref[:, 2, :, 32:] = 0.8
    out = faces.local_color_transfer(photo, ref, sigma=3.0)
    left, right = out[..., 8:56, 4:24].mean((2, 3))[0], out[..., 8:56, 40:60].mean((2, 3))[0]
    assert left[0] > left[2] + 0.4 and right[2] > right[0] + 0.4
    # where the reference is not valid, its overall colour is used, and the image keeps
    # its own large-scale structure there (a global transfer)
    photo[..., 32:, 32:] = 0.7  # a step far larger than the windows, in the invalid half
    cover = torch.zeros(1, 1, h, w)
    cover[..., :32] = 1.0
    out = faces.local_color_transfer(photo, ref, sigma=3.0, mask=cover)
    top, bottom = out[..., 4:24, 48:64].mean((2, 3))[0], out[..., 40:60, 48:64].mean((2, 3))[0]
    for part in (top, bottom):
        assert part[0] > part[2] + 0.3  # the valid (red) half's colour, not the invalid blue
    assert float(imaging.luminance(out[..., 40:60, 48:64]).mean()) > \
        float(imaging.luminance(out[..., 4:24, 48:64]).mean()) + 0.05


# ----------------------------------------------------------------------------- missing dependency

def test_missing_dlib_names_the_install_command(monkeypatch, photo, style_path, tmp_path,
                                                capsys):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(RestyleError, match=r"pip install 'restyle\[portrait\]'"):
        restyle.transfer(photo, style_path, method="portrait", size=64)
    out = tmp_path / "out.png"
    assert cli.main(["transfer", str(photo), str(style_path), "--method", "portrait",
                     "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "restyle[portrait]" in err[0] and "dlib" in err[0]
    assert not out.exists()


def test_missing_model_files_name_the_install_command(monkeypatch):
    real = faces.importlib.util.find_spec
    monkeypatch.setattr(faces.importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else
                        real(name, *a))
    with pytest.raises(RestyleError, match=r"face-recognition-models.*restyle\[portrait\]"):
        faces.model_file()


# ----------------------------------------------------------------------------- with dlib

@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    from skimage import data
    return Image.fromarray(data.astronaut())


@needs_dlib
def test_detects_the_face_and_landmarks_at_any_size(astronaut):
    big = faces.main_face(astronaut, "photo")
    x0, y0, x1, y1 = big.box
    assert 150 < x0 < 200 and 60 < y0 < 100 and 80 < x1 - x0 < 110
    assert 35 < big.interocular < 55
    left, right = big.eyes
    assert left[0] < right[0] and abs(left[1] - right[1]) < 10  # upright face
    small = faces.main_face(astronaut.resize((128, 128), Image.LANCZOS), "photo").scaled(4, 4)
    assert np.linalg.norm(small.landmarks - big.landmarks, axis=1).mean() < 0.1 * big.interocular


@needs_dlib
def test_detector_finds_warped_landmarks_where_the_warp_put_them(astronaut):
    """Warp the photo's face onto a changed geometry: dlib finds it there."""
    photo = imaging.to_tensor(astronaut)
    face = faces.main_face(astronaut, "photo")
    target = face.landmarks.copy()
    centre = target.mean(0)
    target = centre + (target - centre) @ np.array([[1.15, 0.05], [-0.05, 1.1]])  # bigger, turned
    target[:, 0] += 20
    target[48:68, 1] += 3  # and a longer chin-to-nose
    moved = faces.Face(face.box, face.score, target)
    warped, cover = faces.warp_face(photo, face, moved, (512, 512))
    assert float(cover.min()) == 1.0  # everything comes from inside the photo
    found = faces.detect_faces(warped)[0]
    d = np.linalg.norm(found.landmarks - target, axis=1)
    assert d.mean() < 2.0, f"mean {d.mean():.2f} px"  # within a pixel or two
    assert d.mean() < 0.05 * np.linalg.norm(target[42:48].mean(0) - target[36:42].mean(0))


@needs_dlib
def test_several_faces_use_the_largest_with_a_note(astronaut, caplog):
    canvas = Image.new("RGB", (768, 512), "white")
    canvas.paste(astronaut.crop((130, 30, 310, 230)), (0, 0))  # face ~91 px
    canvas.paste(astronaut.crop((130, 30, 310, 230)).resize((270, 300)), (400, 100))  # ~1.5x
    with caplog.at_level(logging.WARNING, logger="restyle"):
        face = faces.main_face(canvas, "photo")
    assert face.box[0] > 400
    assert "faces found in the photo; using the largest" in caplog.text


@needs_dlib
def test_no_face_exits_2_and_writes_nothing(astronaut, tmp_path, capsys):
    blank = tmp_path / "stripes.png"
    Image.fromarray(stripes(96)).save(blank)
    portrait = tmp_path / "portrait.png"
    astronaut.resize((128, 128), Image.LANCZOS).save(portrait)
    for content, style, where in ((blank, portrait, "photo"), (portrait, blank, "painting")):
        out = tmp_path / f"out-{where}.png"
        code = cli.main(["transfer", str(content), str(style), "--method", "portrait",
                         "--size", "64", "-o", str(out), "-q"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1 and f"no face found in the {where}" in err[0]
        assert "--method gatys" in err[0]
        assert not out.exists() and not list(tmp_path.glob(".out-*"))


@needs_dlib
def test_portrait_transfer_takes_the_painting_and_keeps_the_face(astronaut, tmp_path):
    """A small run on a real pair: the losses fall, the colours move to the painting's,
    the face stays where it was."""
    painting = imaging.load_image(shared("styles", "woman_with_a_hat.jpg"))
    photo = astronaut.crop((96, 16, 352, 272))  # head and shoulders, 256 px
    losses = []
    out = restyle.transfer(photo, painting, method="portrait", size=96, iterations=10,
                           min_size=0, callbacks=[lambda p: losses.append(p.loss)])
    assert out.size == (96, 96)
    assert losses[-1] < 0.7 * losses[0]
    small = photo.resize((96, 96), Image.LANCZOS)

    def palette_gap(img):  # distance of the mean colour from the painting's
        return np.abs(np.asarray(img, float).mean((0, 1)) -
                      np.asarray(painting, float).mean((0, 1))).sum()

    assert palette_gap(out) < 0.7 * palette_gap(small)
    # the face is where the photo's face is (found on the output enlarged, as dlib needs)
    face = faces.main_face(small, "photo")
    got = faces.detect_faces(out.resize((512, 512), Image.LANCZOS))
    assert got, "no face found in the output"
    k = 96 / 512
    d = np.linalg.norm(got[0].scaled(k, k).landmarks - face.landmarks, axis=1).mean()
    assert d < 0.25 * face.interocular


def test_gain_clamps_are_validated(photo, style_path):
    with pytest.raises(RestyleError, match="--gain-min must be at most 1.0"):
        restyle.transfer(photo, style_path, method="portrait", gain_min=1.5)
    with pytest.raises(RestyleError, match="exactly one painting"):
        restyle.transfer(photo, [style_path, style_path], method="portrait", size=32)
