"""Tiles with partition-of-unity blending, whole-image statistics over tiles, and the
one-pass methods on tiles and with region masks."""

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle.errors import RestyleError
from restyle.tiling import Grid, Moments, axis_spans, axis_weights
from restyle.transforms import channel_stats

from .conftest import stripes
from .test_one_pass import DECODER_ARGS, models  # noqa: F401  (the tiny decoders fixture)


@pytest.mark.parametrize("n,tile,overlap", [(100, 100, 16), (300, 128, 32), (1000, 256, 64),
                                            (257, 96, 24)])
def test_spans_cover_overlap_and_weights_sum_to_one(n, tile, overlap):
    spans = axis_spans(n, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(b - a == min(tile, n) for a, b in spans)
    assert all(a % 16 == 0 for a, _ in spans[:-1])
    for (a0, b0), (a1, b1) in zip(spans, spans[1:]):
        assert b0 - a1 >= overlap  # neighbours overlap by at least `overlap`
    weights = axis_weights(n, spans)
    assert torch.allclose(torch.stack(weights).sum(0), torch.ones(n, dtype=torch.float64))
    for (a, b), w in zip(spans, weights):
        assert float(w[:a].abs().sum()) == 0 and float(w[b:].abs().sum()) == 0
    with pytest.raises(RestyleError, match="overlap"):
        axis_spans(100, 32, 32)


def test_blending_constant_tiles_is_seamless_and_margins_are_cut():
    image = torch.rand(1, 3, 150, 230)
    grid = Grid(150, 230, tile=64, overlap=16, margin=16)
    assert len(grid) > 4
    out = torch.zeros_like(image)
    for t in grid:
        crop = t.crop(image)
        assert crop.shape[-2:] == (t.cy1 - t.cy0, t.cx1 - t.cx0)
        out[..., t.cy0:t.cy1, t.cx0:t.cx1] += crop * t.weight()
    assert torch.allclose(out, image, atol=1e-6)  # identity per tile -> exactly the image


def test_moments_over_tiles_equal_the_whole_image_statistics():
    feat = torch.randn(1, 8, 96, 80) * torch.linspace(0.5, 3, 8).view(1, 8, 1, 1) + 2
    grid = Grid(96 * 4, 80 * 4, tile=128, overlap=32, margin=32)  # features 4x smaller
    m, diagonal = Moments(), Moments(full=False)  # diagonal: variances only (AdaIN)
    for t in grid:
        f = feat[..., t.cy0 // 4:(t.cy1 + 3) // 4, t.cx0 // 4:(t.cx1 + 3) // 4]
        m.add(f, t.weight(4, f.shape[-2:]))
        diagonal.add(f, t.weight(4, f.shape[-2:]))
    mean, std = channel_stats(feat)
    for moments in (m, diagonal):
        assert torch.allclose(moments.mean().float(), mean.flatten(), atol=1e-4)
        assert torch.allclose(moments.std().float(), std.flatten(), atol=1e-4)
    flat = feat[0].reshape(8, -1).double()
    assert torch.allclose(m.cov(), torch.cov(flat, correction=0), atol=1e-6)
    with pytest.raises(ValueError, match="without covariances"):
        diagonal.cov()
    with pytest.raises(RestyleError, match="no feature positions"):
        Moments().mean()


@pytest.fixture
def big_content(tmp_path):
    from skimage import data
    path = tmp_path / "content.png"
    Image.fromarray(data.astronaut()).resize((200, 160), Image.LANCZOS).save(path)
    return path


@pytest.mark.parametrize("method", ["adain", "wct", "style-swap"])
def test_tiled_output_matches_the_untiled_one(method, models, big_content):  # noqa: F811
    kw = dict(method=method, size=200, style_size=48, precision="fp32",
              **DECODER_ARGS[method](models))
    style = stripes(48, period=8)
    whole = np.asarray(restyle.transfer(big_content, style, **kw), float)
    tiled = np.asarray(restyle.transfer(big_content, style, tile=112, **kw), float)
    assert tiled.shape == whole.shape
    diff = np.abs(tiled - whole)
    # the same picture: small differences near tile borders only, no visible seam
    assert diff.mean() < 4 and np.percentile(diff, 99) < 40
    plain = np.asarray(restyle.transfer(big_content, style, strength=0, **kw), float)
    assert np.abs(whole - plain).mean() > 3 * diff.mean()  # far from a trivial match


@pytest.mark.parametrize("method", ["adain", "wct"])
def test_masks_paint_each_region_in_its_style(method, models, big_content, tmp_path):  # noqa: F811
    h, w = 160, 200
    left = np.zeros((h, w), np.uint8)
    left[:, : w // 2] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    Image.fromarray(255 - left).save(tmp_path / "right.png")
    red = np.zeros((48, 48, 3), np.uint8)
    red[..., 0] = 220
    blue = np.zeros((48, 48, 3), np.uint8)
    blue[..., 2] = 220
    red[::6] = blue[::6] = 128
    kw = dict(method=method, size=200, style_size=48, precision="fp32",
              **DECODER_ARGS[method](models))
    out = np.asarray(restyle.transfer(big_content, [red, blue], masks=f"{tmp_path / 'left.png'},"
                                      f"{tmp_path / 'right.png'}", **kw), float)
    only_red = np.asarray(restyle.transfer(big_content, red, **kw), float)
    only_blue = np.asarray(restyle.transfer(big_content, blue, **kw), float)
    lft, rgt = slice(0, w // 2 - 16), slice(w // 2 + 16, w)
    assert np.abs(out[:, lft] - only_red[:, lft]).mean() < np.abs(out[:, lft] - only_blue[:, lft]).mean()
    assert np.abs(out[:, rgt] - only_blue[:, rgt]).mean() < np.abs(out[:, rgt] - only_red[:, rgt]).mean()
    # a half that no mask covers keeps the photo's own decoding (strength 0)
    plain = np.asarray(restyle.transfer(big_content, red, strength=0, **kw), float)
    half = np.asarray(restyle.transfer(big_content, red, masks=str(tmp_path / "left.png"), **kw),
                      float)
    assert np.abs(half[:, rgt] - plain[:, rgt]).mean() < 0.5 * np.abs(half[:, lft] - plain[:, lft]).mean()
    with pytest.raises(RestyleError, match="one mask per style"):
        restyle.transfer(big_content, [red, blue], masks=str(tmp_path / "left.png"), **kw)
    Image.fromarray(np.zeros((h, w), np.uint8)).save(tmp_path / "black.png")
    with pytest.raises(RestyleError, match="every mask is black"):
        restyle.transfer(big_content, red, masks=str(tmp_path / "black.png"), **kw)
