"""Spatial control: a style per masked region, object-only transfer, GrabCut boxes,
mask validation and the feathered composite."""

import logging
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle import imaging, masks
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.losses import gram_matrix
from restyle.style_losses import get_style_loss, style_targets

from .conftest import stripes

# three style layers: the network stops early, which keeps the optimizations fast
FAST = dict(method="gatys", size=64, iterations=20, min_size=0, style_layers="relu1_1,relu2_1,relu3_1")


def save_mask(path, array):
    Image.fromarray((np.asarray(array, float) * 255).astype(np.uint8), "L").save(path)
    return str(path)


def halves(tmp_path, h=64, w=64):
    left = np.zeros((h, w))
    left[:, : w // 2] = 1
    return save_mask(tmp_path / "left.png", left), save_mask(tmp_path / "right.png", 1 - left)


def gram_distance(img: np.ndarray, style: np.ndarray, layers=("relu1_1", "relu2_1", "relu3_1")):
    from restyle.backbone import get_vgg
    vgg = get_vgg()
    a = vgg(imaging.to_tensor(imaging.load_image(img)), list(layers))
    b = vgg(imaging.to_tensor(imaging.load_image(style)), list(layers))
    return sum(float(((gram_matrix(a[k]) - gram_matrix(b[k])) ** 2).mean() /
                     (gram_matrix(b[k]) ** 2).mean()) for k in layers)


def green_checks(size=64, period=8):
    yy, xx = np.mgrid[:size, :size]
    v = ((yy // (period // 2)) + (xx // (period // 2))) % 2
    arr = np.zeros((size, size, 3), np.uint8)
    arr[v == 1] = (30, 220, 60)
    arr[v == 0] = (250, 240, 200)
    return arr


def test_two_styles_in_two_halves(photo, tmp_path):
    a, b = stripes(64), green_checks(64)
    left, right = halves(tmp_path)
    out = np.asarray(restyle.transfer(photo, [a, b], masks=f"{left},{right}", strength=0.9,
                                      **FAST))
    lhalf, rhalf = out[:, 4:28], out[:, 36:60]  # away from the seam
    assert gram_distance(lhalf, a) < gram_distance(lhalf, b)
    assert gram_distance(rhalf, b) < gram_distance(rhalf, a)
    # red/blue stripes on the left, green checks on the right
    assert lhalf[..., 1].mean() < rhalf[..., 1].mean() - 30


def test_object_mask_keeps_the_photo_outside(photo, tmp_path):
    m = np.zeros((96, 96))  # the mask may have the photo's size, not the output's
    m[24:72, 24:72] = 1
    path = save_mask(tmp_path / "obj.png", m)
    out = np.asarray(restyle.transfer(photo, stripes(64), object_mask=path, strength=0.9,
                                      feather=4, **FAST), float)
    content = np.asarray(imaging.load_image(photo).resize((64, 64), Image.LANCZOS), float)
    outside = np.ones((64, 64), bool)
    outside[10:54, 10:54] = False  # the object (16..48) plus the feathered seam
    assert np.abs(out - content)[outside].max() <= 2
    assert np.abs(out - content)[20:44, 20:44].mean() > 20
    inverted = np.asarray(restyle.transfer(photo, stripes(64), object_mask=path, strength=0.9,
                                           invert_mask=True, **FAST), float)
    assert np.abs(inverted - content)[22:42, 22:42].max() <= 2
    assert np.abs(inverted - content)[outside].mean() > 20


def synthetic_object(size=96):
    """A red disc on a noisy green-grey background, and the disc's true mask."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - 50) ** 2 + (xx - 44) ** 2 < 22 ** 2
    img = (rng.normal(0, 12, (size, size, 3)) + (90, 120, 90)).clip(0, 255)
    img[disc] = (rng.normal(0, 12, (disc.sum(), 3)) + (210, 40, 40)).clip(0, 255)
    return img.astype(np.uint8), disc


def test_grabcut_finds_the_object_in_a_box():
    pytest.importorskip("cv2")
    img, disc = synthetic_object()
    mask = masks.grabcut_mask(imaging.to_tensor(Image.fromarray(img)), (16, 22, 74, 80))[0, 0]
    mask = mask.numpy() > 0.5
    assert mask[disc].mean() > 0.9  # covers most of the object
    assert mask[~disc].mean() < 0.05  # and little else
    with pytest.raises(RestyleError, match="covers the whole photo"):
        masks.grabcut_mask(imaging.to_tensor(Image.fromarray(img)), (0, 0, 96, 96))


def test_box_stylises_the_object_only(tmp_path):
    pytest.importorskip("cv2")
    from scipy.ndimage import binary_dilation
    img, disc = synthetic_object()
    photo = tmp_path / "disc.png"
    Image.fromarray(img).save(photo)
    # the box is given in the photo's pixels (96 px) while the output is 64 px
    out = np.asarray(restyle.transfer(photo, stripes(64), box="16,22,74,80", strength=0.9,
                                      feather=2, **FAST), float)
    small = np.asarray(Image.fromarray(img).resize((64, 64), Image.LANCZOS), float)
    at64 = lambda m: np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((64, 64))) > 128
    far = ~at64(binary_dilation(disc, iterations=8))
    assert np.abs(out - small)[far].mean() < 1.5
    assert np.abs(out - small)[at64(disc)].mean() > 15


def test_box_without_opencv_names_the_install_command(photo, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    code = main(["transfer", str(photo), str(photo), "--box", "10,10,50,50", "--size", "32",
                 "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "pip install 'restyle[masks]'" in err


def test_mask_validation(photo, tmp_path, caplog):
    style = stripes(32)
    left, right = halves(tmp_path)
    empty = save_mask(tmp_path / "empty.png", np.zeros((64, 64)))
    with pytest.raises(RestyleError, match="empty"):
        restyle.transfer(photo, [style, style], masks=f"{left},{empty}", size=32, iterations=1)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(RestyleError, match="is not an image file"):
        restyle.transfer(photo, style, object_mask=str(text), size=32, iterations=1)
    with pytest.raises(RestyleError, match="mask not found"):
        restyle.transfer(photo, style, object_mask=str(tmp_path / "nope.png"), size=32)
    with pytest.raises(RestyleError, match="got 1 masks for 2 style"):
        restyle.transfer(photo, [style, style], masks=left, size=32, iterations=1)
    with pytest.raises(RestyleError, match="one of --masks"):
        restyle.transfer(photo, style, masks=left, box="1,1,5,5", size=32, iterations=1)
    with pytest.raises(RestyleError, match="--invert-mask needs"):
        restyle.transfer(photo, style, invert_mask=True, size=32, iterations=1)
    with pytest.raises(RestyleError, match="--box must be x0,y0,x1,y1"):
        restyle.transfer(photo, style, box="10,10,5", size=32, iterations=1)
    with pytest.raises(RestyleError, match="style weights do not apply|--style-weights"):
        restyle.transfer(photo, [style, style], style_weights=[1, 2], masks=f"{left},{right}",
                         size=32, iterations=1)
    # another shape: stretched to fit, with a note
    wide = save_mask(tmp_path / "wide.png", np.ones((20, 80)))
    with caplog.at_level(logging.WARNING, logger="restyle"):
        out = restyle.transfer(photo, style, object_mask=wide, size=32, iterations=1,
                               min_size=0)
    assert out.size == (32, 32)
    assert "stretched to fit" in caplog.text


def test_masks_stay_soft_at_coarse_layers():
    hard = torch.zeros(1, 1, 64, 64)
    hard[..., :, :30] = 1
    coarse = masks.mask_at(hard, (8, 8))[0, 0, 0]
    assert coarse[0] == 1 and coarse[-1] == 0
    assert 0 < float(coarse[3]) < 1  # the column that straddles the edge is partly in
    soft = masks.feather(hard, 8)[0, 0, 0]
    assert float(soft[10]) > 0.99 and float(soft[50]) < 0.01
    ramp = ((soft > 0.1) & (soft < 0.9)).sum()
    assert 5 <= int(ramp) <= 11  # about 8 pixels wide


def test_style_masks_select_part_of_the_painting(vgg):
    """A style mask makes the target the statistics of that part of the style image only."""
    a, b = imaging.to_tensor(Image.fromarray(stripes(64))), \
        imaging.to_tensor(Image.fromarray(green_checks(64)))
    painting = torch.cat([a, b], -1)  # 64 x 128: stripes left, checks right
    mask = torch.zeros(1, 1, 64, 128)
    mask[..., :64] = 1
    loss = get_style_loss("gram")
    layers = ["relu1_1", "relu2_1"]
    guided = style_targets(loss, vgg, [painting], [1.0], layers, 64 * 128, 1.0, False,
                           style_masks=[mask])
    whole = style_targets(loss, vgg, [painting], [1.0], layers, 64 * 128, 1.0, False)
    only_a = style_targets(loss, vgg, [a], [1.0], layers, 64 * 64, 1.0, False)
    for k in layers:
        # away from the seam the guided Gram is that of the left part
        d_guided = float(((guided[k] - only_a[k]) ** 2).mean() / (only_a[k] ** 2).mean())
        d_whole = float(((whole[k] - only_a[k]) ** 2).mean() / (only_a[k] ** 2).mean())
        assert d_guided < 0.05 < d_whole
