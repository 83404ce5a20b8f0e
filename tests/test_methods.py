"""Gatys transfer and texture synthesis on small images: behaviour, not just shapes."""

import numpy as np
import pytest
from PIL import Image

import restyle
from restyle import imaging
from restyle.backbone import get_vgg
from restyle.errors import RestyleError
from restyle.losses import gram_matrix
from restyle.methods import all_methods, get_method

from .conftest import stripes

# Gatys's own behaviour (the default transfer method is anytime; see test_anytime.py)
FAST = dict(method="gatys", size=64, iterations=25, min_size=0)


def style_distance(img, style, layers=("relu1_1", "relu2_1", "relu3_1")):
    vgg = get_vgg()
    a = vgg(imaging.to_tensor(imaging.load_image(img)), list(layers))
    b = vgg(imaging.to_tensor(imaging.load_image(style)), list(layers))
    return sum(float(((gram_matrix(a[k]) - gram_matrix(b[k])) ** 2).mean() /
                     (gram_matrix(b[k]) ** 2).mean()) for k in layers)


def test_registry_lists_methods_with_params():
    names = {m.name: m for m in all_methods()}
    assert {"gatys", "texture"} <= set(names)
    assert names["gatys"].family == "image-optimization"
    with pytest.raises(RestyleError, match="unknown method"):
        get_method("nope")


def test_transfer_moves_output_towards_style(photo):
    style = stripes(64)
    out = restyle.transfer(photo, style, **FAST, strength=0.8)
    assert out.size == (64, 64)
    content_small = imaging.load_image(photo).resize((64, 64), Image.LANCZOS)
    assert style_distance(out, style) < 0.5 * style_distance(content_small, style)
    diff = np.abs(np.asarray(out, float) - np.asarray(content_small, float)).mean()
    assert diff > 5  # it changed


def test_strength_orders_the_result(photo):
    # Gram's balance is 100 at strength 0.5, so strength 0.1 on this 64 px stripe style is
    # already mostly style; 25 L-BFGS steps had not settled either run (on AVX-512 without
    # AMX the bf16 order flipped), so compare converged fp32 runs far apart in strength
    style = stripes(64)
    kw = dict(FAST, iterations=60, precision="fp32")
    weak = restyle.transfer(photo, style, **kw, strength=0.02)
    strong = restyle.transfer(photo, style, **kw, strength=0.9)
    assert style_distance(strong, style) < style_distance(weak, style)


def test_seed_makes_noise_init_reproducible(photo):
    style = stripes(64)
    kw = dict(FAST, iterations=4, init="noise", precision="fp32")
    a = np.asarray(restyle.transfer(photo, style, **kw, seed=3))
    b = np.asarray(restyle.transfer(photo, style, **kw, seed=3))
    c = np.asarray(restyle.transfer(photo, style, **kw, seed=4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_blend_weights_select_styles(photo):
    red_blue = stripes(64)
    green = np.zeros((64, 64, 3), np.uint8)
    green[::4, :, 1] = 255
    kw = dict(FAST, precision="fp32", strength=0.9)
    only_first = restyle.transfer(photo, [red_blue, green], style_weights=[1, 0], **kw)
    single = restyle.transfer(photo, red_blue, **kw)
    assert np.abs(np.asarray(only_first, float) - np.asarray(single, float)).max() < 2
    mixed = restyle.transfer(photo, [red_blue, green], style_weights=[0.5, 0.5], **kw)
    assert np.asarray(mixed, float)[..., 1].mean() > np.asarray(single, float)[..., 1].mean()
    with pytest.raises(RestyleError, match="2 style weights for 1"):
        restyle.transfer(photo, red_blue, style_weights=[1, 2], **kw)


def test_luminance_preservation_keeps_content_colours(photo):
    style = stripes(64)  # strongly red and blue
    plain = restyle.transfer(photo, style, **FAST, strength=0.8)
    kept = restyle.transfer(photo, style, **FAST, strength=0.8, preserve_color="luminance")
    content = imaging.to_tensor(imaging.load_image(photo).resize((64, 64), Image.LANCZOS))
    chroma = lambda img: imaging.rgb_to_yiq(imaging.to_tensor(img))[:, 1:]
    err_kept = float((chroma(kept) - imaging.rgb_to_yiq(content)[:, 1:]).abs().mean())
    err_plain = float((chroma(plain) - imaging.rgb_to_yiq(content)[:, 1:]).abs().mean())
    assert err_kept < 0.02 < err_plain


def test_histogram_preservation_uses_content_palette(photo):
    style = stripes(64)
    kept = np.asarray(restyle.transfer(photo, style, **FAST, strength=0.8,
                                       preserve_color="histogram"), float)
    plain = np.asarray(restyle.transfer(photo, style, **FAST, strength=0.8), float)
    content = np.asarray(imaging.load_image(photo).resize((64, 64)), float)
    assert np.abs(kept.mean((0, 1)) - content.mean((0, 1))).sum() < \
        np.abs(plain.mean((0, 1)) - content.mean((0, 1))).sum()


def test_bad_parameters_are_clear_errors(photo, tmp_path):
    style = stripes(32)
    with pytest.raises(RestyleError, match="--strength must be at most 1"):
        restyle.transfer(photo, style, strength=2)
    with pytest.raises(RestyleError, match="unknown parameter"):
        restyle.transfer(photo, style, colour=1)
    with pytest.raises(RestyleError, match="unknown vgg16 layer"):
        restyle.transfer(photo, style, size=32, iterations=1, style_layers="relu7_1")
    with pytest.raises(RestyleError, match="--preserve-color must be one of"):
        restyle.transfer(photo, style, preserve_color="sepia")
    with pytest.raises(RestyleError, match="use restyle.texture"):
        restyle.transfer(photo, style, method="texture")


def test_texture_synthesis_matches_exemplar_statistics(tmp_path):
    ex = stripes(64, period=8)
    out = restyle.texture(ex, size="80x48", iterations=25, min_size=0)
    assert out.size == (80, 48)
    noise = np.random.default_rng(0).integers(0, 255, (48, 80, 3), np.uint8)
    assert style_distance(out, ex) < 0.3 * style_distance(noise, ex)


def seam_ratio(img: Image.Image) -> float:
    a = np.asarray(img, float)
    seam = np.abs(a[:, 0] - a[:, -1]).mean() + np.abs(a[0] - a[-1]).mean()
    inner = np.abs(a[:, 1:] - a[:, :-1]).mean() + np.abs(a[1:] - a[:-1]).mean()
    return seam / inner


def test_tileable_texture_has_no_seams():
    from skimage import data
    ex = data.brick()[:128, :128]
    tiled = restyle.texture(ex, size="64x64", iterations=60, min_size=0, tileable=True, seed=1)
    plain = restyle.texture(ex, size="64x64", iterations=60, min_size=0, seed=1)
    # across the wrap-around border a tileable texture changes no more than inside it
    assert seam_ratio(tiled) < 1.1
    assert seam_ratio(plain) > 1.15 * seam_ratio(tiled)


def test_texture_size_errors():
    with pytest.raises(RestyleError, match="--size must look like"):
        restyle.texture(stripes(32), size="big")
    with pytest.raises(RestyleError, match="between 16 and"):
        restyle.texture(stripes(32), size="8x8")
