"""Portilla-Simoncelli texture synthesis: statistics really approach the exemplar's."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle import imaging
from restyle.cli import main
from restyle.errors import RestyleError

from .conftest import seam_step

METHOD = "portilla-simoncelli"


@pytest.fixture(scope="module")
def brick():
    from skimage import data
    return np.ascontiguousarray(data.brick()[:128, :128])  # grey, 128 px


@pytest.fixture(scope="module")
def coloured():
    """A colour texture: scikit-image's stained tissue sample (three colour axes)."""
    from skimage import data
    return np.ascontiguousarray(data.immunohistochemistry()[:128, :128])


def needs_plenoptic():
    pytest.importorskip("plenoptic")


def grey_ps_distance(img, target, n_scales=3) -> float:
    """Distance of plenoptic's own grey-level PS statistics (its loss weighting), on
    luminance: an independent check of the colour model that restyle builds on it."""
    import plenoptic as po
    a = imaging.luminance(imaging.to_tensor(imaging.load_image(img)))
    b = imaging.luminance(imaging.to_tensor(imaging.load_image(target)))
    model_a = po.models.PortillaSimoncelli(tuple(a.shape[-2:]), n_scales=n_scales)
    model_b = po.models.PortillaSimoncelli(tuple(b.shape[-2:]), n_scales=n_scales)
    loss = po.loss.portilla_simoncelli_loss_factory(model_b, b)
    with torch.no_grad():
        return float(loss(model_a(a), model_b(b)))


def synthesise(exemplar, **kw):
    first = []

    def keep_start(p):
        if p.step == 1:
            first.append(imaging.to_pil(p.image))

    out = restyle.texture(exemplar, method=METHOD, callbacks=[keep_start], **kw)
    return out, first[0]


def test_grey_texture_statistics_approach_the_exemplar(brick):
    needs_plenoptic()
    out, start = synthesise(brick, size="64x64", iterations=50, n_scales=3)
    assert out.size == (64, 64)
    d_out, d_start = grey_ps_distance(out, brick), grey_ps_distance(start, brick)
    assert d_out < 0.25 * d_start, (d_out, d_start)
    # the pyramid is periodic, so the result tiles: across its wrap-around border it
    # changes as it does across the rows and columns beside it ...
    assert seam_step(out) < 2
    arr = np.asarray(out, float)
    # ... which images that do not tile fail: crops of the exemplar and of the result
    assert min(seam_step(brick[:64, :64]), seam_step(brick[64:, :64])) > 2
    crops = [seam_step(arr[y:y + 48, x:x + 48]) for y in (0, 8, 16) for x in (0, 8, 16)]
    assert np.median(crops) > 2
    # grey in, grey out: the colour axes of a grey exemplar collapse to one
    assert np.abs(arr[..., 0] - arr[..., 2]).max() <= 1
    # the brightness distribution follows the exemplar's
    assert abs(arr.mean() - brick.mean()) < 10 and abs(arr.std() - brick.std()) < 0.3 * brick.std()


def test_statistics_and_their_gradient_are_periodic(coloured):
    """Why results tile: every operation of the model wraps around, so moving the image
    round the torus (by whole steps of the coarsest pyramid band) moves the gradient with
    it and leaves the statistics unchanged; padding, convolution or resizing that does not
    wrap would change them."""
    needs_plenoptic()
    from restyle.methods.portilla import ColorBasis, PSStatistics, ps_loss
    ex = imaging.to_tensor(imaging.load_image(coloured))
    basis = ColorBasis.of(ex)
    model = PSStatistics((64, 64), basis, n_scales=3)
    target = PSStatistics(tuple(ex.shape[-2:]), basis, n_scales=3)(basis.project(ex)).detach()
    z = basis.project(ex[..., 32:96, 16:80]).requires_grad_(True)

    def stats_and_grad(x):
        x = x.detach().requires_grad_(True)
        stats = model(x)
        ps_loss(stats, target, model.weights).backward()
        return stats.detach(), x.grad

    stats, grad = stats_and_grad(z)
    shift = (8, 24)  # multiples of 2**n_scales
    rolled_stats, rolled_grad = stats_and_grad(torch.roll(z, shift, (-2, -1)))
    torch.testing.assert_close(rolled_stats, stats, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(rolled_grad, torch.roll(grad, shift, (-2, -1)),
                               rtol=1e-3, atol=1e-3 * float(grad.abs().max()))
    # a shift that does not wrap (zeros come in at the border) changes them
    shifted = torch.zeros_like(z)
    shifted[..., 8:, 24:] = z[..., :-8, :-24]
    assert (stats_and_grad(shifted)[0] - stats).norm() > 0.1 * stats.norm()


def test_colour_statistics_approach_the_exemplar(coloured):
    needs_plenoptic()
    from restyle.methods.portilla import ColorBasis, texture_statistics
    out, start = synthesise(coloured, size="64x64", iterations=60, n_scales=3)
    ex = imaging.to_tensor(imaging.load_image(coloured))
    basis = ColorBasis.of(ex)
    assert basis.channels == 3

    def dist(img):
        s = texture_statistics(imaging.to_tensor(imaging.load_image(img)), basis, n_scales=3)
        t = texture_statistics(ex, basis, n_scales=3)
        return float((s - t).norm())

    assert dist(out) < 0.3 * dist(start)
    # the palette: per-channel means and the colour correlation of the exemplar
    a = np.asarray(out, float).reshape(-1, 3)
    b = coloured.reshape(-1, 3).astype(float)
    assert np.abs(a.mean(0) - b.mean(0)).max() < 8
    assert np.abs(np.corrcoef(a.T) - np.corrcoef(b.T)).max() < 0.15


def test_output_size_honoured(brick):
    needs_plenoptic()
    # 72x60 is synthesised at 72x64 (sides divisible by 2**3) and resized periodically
    out = restyle.texture(brick, method=METHOD, size="72x60", iterations=2, n_scales=3)
    assert out.size == (72, 60)


def test_cli_texture_with_portilla_simoncelli(brick, tmp_path, capsys):
    needs_plenoptic()
    ex, out = tmp_path / "brick.png", tmp_path / "ps.png"
    Image.fromarray(brick).save(ex)
    code = main(["texture", str(ex), "--method", METHOD, "--size", "64x56", "--n-scales", "3",
                 "--iterations", "2", "-o", str(out), "-q"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "wrote" in stdout and Image.open(out).size == (64, 56)


@pytest.mark.parametrize("kw,pattern", [
    (dict(size="64x64"), "too small for 4 scales"),
    (dict(size="128x128", scale=0.5), "exemplar is 64x64 .* need at least 112"),
    (dict(spatial_corr_width=6), "must be odd"),
    (dict(n_scales=9), "--n-scales must be at most 7"),
])
def test_bad_parameters_are_clear_errors(brick, kw, pattern):
    needs_plenoptic()
    with pytest.raises(RestyleError, match=pattern):
        restyle.texture(brick, method=METHOD, iterations=1, **kw)


def test_one_exemplar_only(brick):
    needs_plenoptic()
    with pytest.raises(RestyleError, match="one exemplar"):
        restyle.texture([brick, brick], method=METHOD, size="128x128", iterations=1)


def test_missing_plenoptic_is_a_one_line_install_hint(brick, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "plenoptic", None)  # import plenoptic -> ImportError
    with pytest.raises(RestyleError, match=r"pip install 'restyle\[ps\]'"):
        restyle.texture(brick, method=METHOD, size="128x128", iterations=1)
    ex, out = tmp_path / "brick.png", tmp_path / "ps.png"
    Image.fromarray(brick).save(ex)
    code = main(["texture", str(ex), "--method", METHOD, "-o", str(out), "-q"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "needs the plenoptic package" in err and not out.exists()
