"""Stroke control (restyle/stroke.py): orientation measurement and rotation, field images,
the stroke metrics, and --stroke-angle / --stroke-field / --stroke-size end to end."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle import imaging, stroke
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.evaluate import metrics

from .conftest import ROOT, stripes

HAVE_LITE = (ROOT / "models" / "adain_lite.safetensors").exists()


def oriented_stripes(angle: float, h: int = 96, w: int = 128, period: float = 8.0
                     ) -> torch.Tensor:
    """Grey sine stripes whose strokes run at ``angle`` degrees (counter-clockwise from
    horizontal on screen), as (1, 3, h, w)."""
    y, x = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    a = math.radians(angle)
    t = x * math.sin(a) + y * math.cos(a)  # distance across the stripes (y points down)
    return (0.5 + 0.5 * torch.sin(2 * math.pi * t / period)).expand(1, 3, h, w).clone()


def angle_gap(a: float, b: float) -> float:
    return abs((a - b + 90) % 180 - 90)


@pytest.mark.parametrize("angle", [0, 30, 90, 135])
def test_measured_orientation_follows_the_stripes_and_the_rotation(angle):
    img = oriented_stripes(angle)
    assert angle_gap(stroke.dominant_angle(img), angle) < 3
    for rot in (20, -45, 70):
        turned = stroke.rotate_cropped(img, rot)
        assert angle_gap(stroke.dominant_angle(turned), angle + rot) < 3, rot
        # the crop holds only pixels of the image (no fill from beyond its corners)
        assert float(turned.std()) > 0.3 and turned.shape[-1] < img.shape[-1]


@pytest.mark.parametrize("w,h,deg", [(160, 128, 45), (300, 100, 30), (100, 100, 45),
                                     (128, 160, 80), (90, 60, -20)])
def test_inscribed_box_lies_inside_the_rotated_image(w, h, deg):
    _, inside = stroke.rotate(torch.rand(1, 3, h, w), deg)
    x0, y0, x1, y1 = stroke.inscribed_box(w, h, deg)
    assert float(inside[..., y0:y1, x0:x1].min()) == 1.0
    assert (x1 - x0) * (y1 - y0) > 0.15 * w * h  # (a 3:1 image at 30 degrees: 0.19)


def test_align_angle_turns_the_style_to_the_requested_direction():
    img = oriented_stripes(30)
    for target in (0, 45, 90, 170):
        rot = stroke.align_angle(img, target)
        assert -90 < rot <= 90
        assert angle_gap(stroke.dominant_angle(stroke.rotate_cropped(img, rot)), target) < 3


def test_alignment_metric_on_stripes():
    for angle in (0, 45, 120):
        img = oriented_stripes(angle)
        assert metrics.stroke_alignment(img, angle) > 0.95
        assert metrics.stroke_alignment(img, angle + 90) < 0.05
        field = torch.full((1, 1, 10, 12), float(angle))  # a field, at another size
        assert metrics.stroke_alignment(img, field) > 0.95


@pytest.mark.parametrize("period", [3, 6, 12, 24])
def test_wavelength_metric_on_stripes(period):
    got = metrics.stroke_wavelength(oriented_stripes(30, 256, 320, period))
    assert got["pixels"] == pytest.approx(period, rel=0.06)
    assert got["relative"] == pytest.approx(period / 320, rel=0.06)


def test_field_image_round_trip_and_etf(tmp_path):
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 80), indexing="ij")
    angle = (170 * x + 5)[None, None]  # every direction, left to right
    path = tmp_path / "field.png"
    imaging.save_image(stroke.field_image(angle), path)
    got, conf = stroke.load_field(str(path), (64, 80), smooth=0.5)
    gap = ((got - angle + 90) % 180 - 90).abs()
    assert float(gap[..., 4:-4].max()) < 4 and float(conf.min()) > 0.9
    # the edge tangent flow of stripes runs along them
    flow, conf = stroke.etf(oriented_stripes(60))
    assert float(((flow - 60 + 90) % 180 - 90).abs()[..., 8:-8, 8:-8].max()) < 2


def test_bin_masks_are_soft_and_sum_to_one():
    angle = torch.linspace(0, 179.9, 200).view(1, 1, 1, -1)
    masks = stroke.bin_masks(angle, 4)
    assert [c for c, _ in masks] == [0, 45, 90, 135]
    total = sum(m for _, m in masks)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    assert float(masks[1][1][..., 50]) == pytest.approx(1 - abs(angle[..., 50].item() - 45) / 45,
                                                        abs=1e-4)


def test_guided_upsample_restores_the_guides_edges():
    guide = torch.zeros(1, 3, 64, 64)
    guide[..., :, 32:] = 1.0  # a vertical edge
    low = imaging.resize_tensor(guide, (16, 16))  # the edge blurred over 4 px
    up = stroke.guided_upsample(low, guide)
    naive = torch.nn.functional.interpolate(low, size=(64, 64), mode="bilinear")
    assert float((up - guide).abs().mean()) < 0.5 * float((naive - guide).abs().mean())
    flat = torch.full((1, 3, 16, 16), 0.3)  # a result that ignores the photo gains no detail
    assert torch.allclose(stroke.guided_upsample(flat, guide), torch.full((1, 3, 64, 64), 0.3),
                          atol=0.02)


@pytest.mark.skipif(not HAVE_LITE, reason="the distilled AdaIN model is not installed")
def test_stroke_angle_aligns_the_strokes_of_a_one_pass_method():
    from skimage import data
    content = Image.fromarray(data.astronaut()).resize((96, 96), Image.LANCZOS)
    style = Image.fromarray(stripes(96, period=8))  # vertical stripes: strokes at 90 degrees
    plain = restyle.transfer(content, style, method="adain-lite", size=96)
    turned = restyle.transfer(content, style, method="adain-lite", size=96, stroke_angle="0")
    a0 = metrics.stroke_alignment(imaging.to_tensor(plain), 0)
    a1 = metrics.stroke_alignment(imaging.to_tensor(turned), 0)
    assert a1 > a0 + 0.1, (a0, a1)
    field = restyle.transfer(content, style, method="adain-lite", size=96, stroke_field="etf")
    assert field.size == plain.size


@pytest.mark.parametrize("kw", [
    dict(method="gatys", size=64, iterations=15, min_size=0, strength=0.8),
    # anytime turns the style for its one-pass start and for the refinement alike
    dict(method="anytime", size=64, iterations=10, budget=60, strength=0.8)],
    ids=["gatys", "anytime"])
def test_stroke_angle_aligns_optimized_strokes(photo, kw):
    style = Image.fromarray(stripes(64, period=8))  # vertical stripes
    plain = restyle.transfer(photo, style, **kw)
    turned = restyle.transfer(photo, style, stroke_angle="0", **kw)
    a0 = metrics.stroke_alignment(imaging.to_tensor(plain), 0)
    a1 = metrics.stroke_alignment(imaging.to_tensor(turned), 0)
    assert a1 > a0 + 0.1, (a0, a1)


@pytest.mark.skipif(not HAVE_LITE, reason="the distilled AdaIN model is not installed")
def test_stroke_size_scales_the_wavelength_of_a_one_pass_method():
    from skimage import data
    content = Image.fromarray(data.astronaut()).resize((128, 128), Image.LANCZOS)
    style = imaging.load_image(ROOT / "restyle" / "assets" / "demo_style.jpg")
    waves = []
    for s in (4, 8, 16):  # at 128 px: working sizes 256, 128 and 64 px
        out = restyle.transfer(content, style, method="adain-lite", size=128, stroke_size=s)
        assert out.size == (128, 128)
        waves.append(metrics.stroke_wavelength(imaging.to_tensor(out),
                                               imaging.to_tensor(content))["pixels"])
    assert waves[0] < waves[1] < waves[2], waves


@pytest.mark.parametrize("method,params,pattern", [
    ("gatys", dict(stroke_angle="north"), "--stroke-angle must be a number of degrees"),
    ("gatys", dict(stroke_angle="nan"), "--stroke-angle must be a finite number"),
    ("gatys", dict(stroke_angle="10", stroke_field="etf"), "not both"),
    ("gatys", dict(stroke_field="no/such/field.png"), "stroke field"),
    ("gatys", dict(stroke_bins=1), "--stroke-bins must be at least 2"),
    ("adain", dict(stroke_angle="north"), "--stroke-angle must be a number of degrees"),
    ("adain", dict(stroke_field="no/such/field.png"), "stroke field"),
    ("adain", dict(stroke_size=-1.0), "--stroke-size must be at least 0"),
    ("network", dict(stroke_size=100.0), "--stroke-size must be at most 16"),
])
def test_bad_stroke_input_is_one_line_error(method, params, pattern, photo, style_path):
    with pytest.raises(RestyleError, match=pattern) as e:
        restyle.transfer(photo, style_path if method != "network" else "x", method=method,
                         size=32, **params)
    assert "\n" not in str(e.value)


def test_grey_field_image_is_an_error(tmp_path, photo, style_path, capsys):
    grey = tmp_path / "grey.png"
    Image.new("RGB", (40, 40), (128, 128, 128)).save(grey)
    out = tmp_path / "out.png"
    code = main(["transfer", str(photo), str(style_path), "--method", "gatys", "--size", "32",
                 "--iterations", "1", "--stroke-field", str(grey), "-o", str(out)])
    err = capsys.readouterr().err
    assert code != 0 and "has no colour" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_evaluate_reports_alignment_and_wavelength(tmp_path, capsys, photo):
    img = tmp_path / "stripes.png"
    imaging.save_image(oriented_stripes(45, 128, 128, 8), img)
    code = main(["evaluate", "--output", str(img), "--content", str(photo), "--style", str(img),
                 "--size", "128", "--stroke-angle", "45", "--wavelength",
                 "--json", str(tmp_path / "m.json")])
    out = capsys.readouterr().out
    assert code == 0 and "aligned" in out and "wave%" in out
    import json
    m = json.loads((tmp_path / "m.json").read_text())["results"][0]["metrics"]
    assert m["stroke_alignment"] > 0.95
    assert m["stroke_wavelength"] == pytest.approx(8, rel=0.06)


def test_working_side_keeps_strokes_relative_to_the_picture():
    assert stroke.working_side(0, 4096) == 4096  # off: the output size
    assert stroke.working_side(1, 4096) == stroke.working_side(1, 512) == 1024
    assert stroke.working_side(2, 2048) == 512 and stroke.working_side(0.5, 1024) == 2048
    assert stroke.working_side(0.1, 256) == 1024  # at most 4x the output
    assert stroke.working_side(16, 4096) == 64


HAVE_PAINTERS = (ROOT / "models" / "painters.safetensors").exists()


@pytest.mark.skipif(not HAVE_PAINTERS, reason="the painters network is not installed")
def test_stroke_size_scales_the_wavelength_of_a_network():
    from skimage import data
    content = Image.fromarray(data.astronaut()).resize((128, 128), Image.LANCZOS)
    waves = []
    for s in (4, 8, 16):  # working sizes 256, 128, 64 px
        out = restyle.transfer(content, "starry_night", model="painters", size=128,
                               stroke_size=s)
        assert out.size == (128, 128)
        waves.append(metrics.stroke_wavelength(imaging.to_tensor(out),
                                               imaging.to_tensor(content))["pixels"])
    assert waves[0] < waves[1] < waves[2], waves


def test_stretch_gives_an_isotropic_texture_the_requested_direction():
    torch.manual_seed(0)
    blobs = imaging.gaussian_blur(torch.rand(1, 3, 120, 160), 2.5)
    blobs = (blobs - blobs.min()) / (blobs.max() - blobs.min())
    assert stroke.orientation_histogram(blobs, 4).max() < 0.3  # no direction of its own
    for target in (0, 30, 90, 135):
        out, _ = stroke.turn(blobs, 0.0, target, 2.0)
        assert angle_gap(stroke.dominant_angle(out), target) < 4
        assert float(out.std()) > 0.8 * float(blobs.std())  # resampled, not blurred
        canvas, inside = stroke.turn(blobs, 0.0, target, 2.0, crop=False)
        assert canvas.shape == blobs.shape and 0.3 < float(inside.mean()) < 1
