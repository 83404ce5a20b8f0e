"""Style losses beyond Gram: hand-computed values, the MMD relations, behaviour as a
distribution moves, guided (masked) statistics, blending, and optimization."""

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle import imaging
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.losses import (augmented_gram, channel_mean_std, gaussian_kernel, gaussian_w2_loss,
                            gram_loss, gram_matrix, linear_kernel, mean_covariance,
                            mean_std_loss, mmd2, mmd_linear_loss, mmd_poly_loss,
                            polynomial_kernel, quantile_levels, random_fourier_embedding,
                            sliced_wasserstein_loss, weighted_quantiles)
from restyle.style_losses import STYLE_LOSS_NAMES, get_style_loss

from .conftest import stripes
from .test_methods import style_distance

NAMES = list(STYLE_LOSS_NAMES)


def samples(f):
    """(1, C, H, W) -> (H*W, C)."""
    return f[0].flatten(1).T


def feats(seed, c=6, h=5, w=4, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, c, h, w, generator=g) * scale + shift


# ----------------------------------------------------------------------------- by hand

def test_mean_std_by_hand():
    f = torch.tensor([[[[1.0, 3.0]], [[2.0, 4.0]]]])  # C=2, positions 2
    mean, std = channel_mean_std(f, eps=0.0)
    assert torch.allclose(mean, torch.tensor([[2.0, 3.0]]))
    assert torch.allclose(std, torch.tensor([[1.0, 1.0]]))
    # target mean (1, 3), std (1, 3): (|(1, 0)|^2 + |(0, -2)|^2) / (|(1, 3)|^2 + |(1, 3)|^2) = 1/4
    loss = mean_std_loss(f, torch.tensor([[1.0, 3.0]]), torch.tensor([[1.0, 3.0]]))
    assert float(loss) == pytest.approx(0.25, rel=1e-4)


def test_mmd_linear_by_hand():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    y = torch.tensor([[1.0, 1.0]])
    assert float(mmd2(x, y, linear_kernel)) == pytest.approx(1.0)  # |(1, 0) - (1, 1)|^2
    f = x.T.reshape(1, 2, 1, 2)
    assert float(mmd_linear_loss(f, torch.tensor([[1.0, 1.0]]))) == pytest.approx(0.5)


def test_gram_loss_is_the_quadratic_kernel_mmd():
    """Li et al. 2017: Gram matching = MMD with k(x, y) = (x.y)^2; equivalently the
    linear-kernel MMD of the second-order features x x^T."""
    f, y = feats(0), feats(1, h=3, w=7, scale=1.5)
    x_s, y_s = samples(f), samples(y)
    gram_sq = float(((gram_matrix(f) - gram_matrix(y)) ** 2).sum())
    quad = float(mmd2(x_s, y_s, lambda a, b: polynomial_kernel(a, b, c=0.0, degree=2)))
    assert quad == pytest.approx(gram_sq, rel=1e-4)
    outer = lambda s: (s[:, :, None] * s[:, None, :]).flatten(1)
    assert float(mmd2(outer(x_s), outer(y_s), linear_kernel)) == pytest.approx(gram_sq, rel=1e-4)
    # the relative versions agree: mmd-poly with c = 0 is the Gram loss
    assert float(mmd_poly_loss(f, augmented_gram(y, 0.0), 0.0)) == \
        pytest.approx(float(gram_loss(f, gram_matrix(y))), rel=1e-5)
    # and the relative linear loss is MMD^2 / E k(y, y')
    lin = mmd2(x_s, y_s, linear_kernel) / y_s.mean(0).pow(2).sum()
    assert float(mmd_linear_loss(f, y_s.mean(0, keepdim=True))) == pytest.approx(float(lin),
                                                                                 rel=1e-4)


def test_mmd_poly_and_gauss_match_the_sample_definition():
    f, y = feats(2), feats(3, h=6, w=6, scale=2.0)
    x_s, y_s = samples(f), samples(y)
    c = 1.7
    exact = mmd2(x_s, y_s, lambda a, b: polynomial_kernel(a, b, c=c, degree=2))
    closed = ((augmented_gram(f, c) - augmented_gram(y, c)) ** 2).sum()
    assert float(closed) == pytest.approx(float(exact), rel=1e-4)
    sigma = 1.2
    g = torch.Generator().manual_seed(0)
    freqs = torch.randn(6, 40000, generator=g) / sigma
    phases = torch.rand(40000, generator=g) * 2 * np.pi
    exact = float(mmd2(x_s, y_s, lambda a, b: gaussian_kernel(a, b, sigma)))
    rff = float(((random_fourier_embedding(f, freqs, phases) -
                  random_fourier_embedding(y, freqs, phases)) ** 2).sum())
    assert exact > 0.01
    assert rff == pytest.approx(exact, rel=0.1)


def test_w2_by_hand_and_against_scipy():
    # independent channels: W2^2 = |mu - mu_t|^2 + sum (sigma - sigma_t)^2
    f = torch.tensor([[[[0.0, 2.0, 0.0, 2.0]], [[1.0, 1.0, 3.0, 3.0]]]])  # mean (1, 2), var (1, 1)
    mean, cov = mean_covariance(f)
    assert torch.allclose(cov, torch.eye(2)[None], atol=1e-6)
    t_mean, t_cov = torch.tensor([[0.0, 2.0]]), torch.diag(torch.tensor([4.0, 9.0]))[None]
    expected = (1.0 + (1 - 2) ** 2 + (1 - 3) ** 2) / (4.0 + 13.0)
    assert float(gaussian_w2_loss(f, t_mean, t_cov, ridge=0.0)) == pytest.approx(expected, rel=1e-4)
    # a general case against scipy's matrix square root
    import scipy.linalg
    x, y = feats(4, c=5, h=6, w=6), feats(5, c=5, h=4, w=9, scale=2.0)
    mx, cx = (t[0].double().numpy() for t in mean_covariance(x))
    my, cy = (t[0].double().numpy() for t in mean_covariance(y))
    ry = scipy.linalg.sqrtm(cy).real
    w2 = ((mx - my) ** 2).sum() + np.trace(cx) + np.trace(cy) - \
        2 * np.trace(scipy.linalg.sqrtm(ry @ cx @ ry)).real
    got = gaussian_w2_loss(x, torch.tensor(my)[None], torch.tensor(cy)[None], ridge=0.0)
    assert float(got) == pytest.approx(w2 / ((my ** 2).sum() + np.trace(cy)), rel=1e-3)


def test_sliced_by_hand_with_different_sample_counts():
    e1 = torch.tensor([[1.0], [0.0]])  # one direction: the first channel
    target = weighted_quantiles(torch.tensor([[0.0, 2.0, 4.0, 6.0]]), None, quantile_levels(4))
    assert torch.allclose(target, torch.tensor([[0.0, 2.0, 4.0, 6.0]]))
    f = torch.tensor([[[[0.0, 1.0, 2.0, 3.0]], [[9.0, 9.0, 9.0, 9.0]]]])
    # sorted differences 0, 1, 2, 3: mean square 3.5, over the target's mean square 14
    assert float(sliced_wasserstein_loss(f, e1, target)) == pytest.approx(0.25, rel=1e-5)
    # two samples sit at levels 1/4 and 3/4, where the target's quantiles are 1 and 5
    two = torch.tensor([[[[5.0, 1.0]], [[0.0, 0.0]]]])
    assert float(sliced_wasserstein_loss(two, e1, target)) < 1e-10
    shifted = torch.tensor([[[[6.0, 2.0]], [[0.0, 0.0]]]])
    assert float(sliced_wasserstein_loss(shifted, e1, target)) == pytest.approx(1 / 14, rel=1e-5)


def test_weighted_quantiles_of_a_mixture():
    v = torch.tensor([[0.0, 10.0]])
    # weights 3:1 -> masses centred at 3/8 and 7/8
    q = weighted_quantiles(v, torch.tensor([3.0, 1.0]), torch.tensor([0.1, 0.375, 0.625, 0.95]))
    assert torch.allclose(q, torch.tensor([[0.0, 0.0, 5.0, 10.0]]))


# ----------------------------------------------------------------------------- behaviour

@pytest.mark.parametrize("name", NAMES)
def test_loss_is_zero_for_the_same_distribution_and_falls_towards_it(name):
    loss = get_style_loss(name, seed=1)
    x0 = feats(10, c=8, h=8, w=8)
    y = feats(11, c=8, h=8, w=8, scale=2.0, shift=0.3) * (torch.arange(8.0) / 4).view(1, 8, 1, 1)
    target = loss.target("relu2_1", [y], [1.0], [None])
    shuffled = y.flatten(2)[..., torch.randperm(64)].view_as(y)  # same samples, other places
    assert float(loss.loss(shuffled, target)) < 1e-4
    values = [float(loss.loss((1 - t) * x0 + t * y, target)) for t in (0.0, 0.25, 0.5, 0.75)]
    assert values[0] > 0.05
    assert all(a > b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("name", NAMES)
def test_losses_are_scale_free(name):
    loss = get_style_loss(name)
    x, y = feats(12, c=8), feats(13, c=8, scale=3.0)
    a = float(loss.loss(x, loss.target("relu1_1", [y], [1.0], [None])))
    b = float(loss.loss(10 * x, loss.target("relu1_1", [10 * y], [1.0], [None])))
    assert a == pytest.approx(b, rel=0.02)


@pytest.mark.parametrize("name", NAMES)
def test_masked_loss_scores_only_the_region(name):
    """Guided statistics: a mask over the left half equals scoring the left half alone."""
    loss = get_style_loss(name)
    x, y = feats(14, c=8, h=6, w=8), feats(15, c=8, scale=2.0)
    target = loss.target("relu3_1", [y], [1.0], [None])
    mask = torch.zeros(1, 1, 6, 8)
    mask[..., :4] = 1
    masked = float(loss.loss(x, target, mask))
    assert masked == pytest.approx(float(loss.loss(x[..., :4].contiguous(), target)), rel=1e-3)
    # the other half does not count; the style side takes masks too
    x2 = x.clone()
    x2[..., 4:] = 50.0
    assert float(loss.loss(x2, target, mask)) == pytest.approx(masked, rel=1e-3)
    wide = feats(19, c=8, h=6, w=8, scale=2.0)
    t_masked = loss.target("relu3_1", [wide], [1.0], [mask])
    t_crop = loss.target("relu3_1", [wide[..., :4].contiguous()], [1.0], [None])
    assert float(loss.loss(x, t_masked)) == pytest.approx(float(loss.loss(x, t_crop)), rel=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_blending_matches_the_mixture_of_styles(name):
    """Blending two styles = the statistics of the pooled samples, for every loss."""
    loss = get_style_loss(name, seed=3)
    a, b = feats(16, c=8, h=6, w=6), feats(17, c=8, h=6, w=6, scale=3.0, shift=1.0)
    x = feats(18, c=8, h=5, w=5, scale=2.0)
    blended = loss.target("relu4_1", [a, b], [0.5, 0.5], [None, None])
    pooled = loss.target("relu4_1", [torch.cat([a, b], -1)], [1.0], [None])
    assert float(loss.loss(x, blended)) == pytest.approx(float(loss.loss(x, pooled)), rel=1e-3)
    only_a = loss.target("relu4_1", [a, b], [1.0, 0.0], [None, None])
    alone = loss.target("relu4_1", [a], [1.0], [None])
    assert float(loss.loss(x, only_a)) == pytest.approx(float(loss.loss(x, alone)), rel=1e-4)
    # the blend lies between the two styles
    ta, tb = alone, loss.target("relu4_1", [b], [1.0], [None])
    assert float(loss.loss(a, blended)) > float(loss.loss(a, ta))
    assert float(loss.loss(b, blended)) > float(loss.loss(b, tb))


# ----------------------------------------------------------------------------- optimization

# three layers: the network stops at relu3_1, which keeps eight optimizations fast;
# line-searched: at 64 px plain fp32 L-BFGS's second step can overshoot and never recover
# in 15 iterations (mmd-gauss on an AVX2-only CPU), bf16 happens not to
LAYERS = "relu1_1,relu2_1,relu3_1"
FAST = dict(method="gatys", size=64, iterations=15, min_size=0, strength=0.8, style_layers=LAYERS,
            line_search="strong_wolfe")


@pytest.mark.parametrize("name", NAMES)
def test_each_loss_moves_the_output_towards_the_style(photo, name):
    style = stripes(64)
    out = restyle.transfer(photo, style, **FAST, style_loss=name)
    content_small = imaging.load_image(photo).resize((64, 64), Image.LANCZOS)
    assert style_distance(out, style) < 0.6 * style_distance(content_small, style)
    diff = np.abs(np.asarray(out, float) - np.asarray(content_small, float)).mean()
    assert diff > 5


def test_texture_with_sliced_wasserstein():
    ex = stripes(64, period=8)
    out = restyle.texture(ex, size="48x48", iterations=15, min_size=0, style_loss="sliced",
                          style_layers="relu1_1,pool1,pool2")
    noise = np.random.default_rng(0).integers(0, 255, (48, 48, 3), np.uint8)
    assert style_distance(out, ex) < 0.3 * style_distance(noise, ex)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_each_loss_at_strength_one_half_on_real_images(name):
    """The calibration check: at 256 px with defaults, every loss moves a photo well
    towards the painting and keeps it recognisable (content loss bounded)."""
    from restyle.backbone import get_vgg
    from restyle.losses import content_loss
    from .conftest import shared
    photo = shared("content", "tubingen.jpg")
    painting = shared("styles", "starry_night.jpg")
    out = restyle.transfer(photo, painting, method="gatys", size=256, style_loss=name)
    c = imaging.load_image(photo).resize(out.size, Image.LANCZOS)
    vgg = get_vgg()
    feats = lambda im: vgg(imaging.to_tensor(im), ["relu4_2"])["relu4_2"]
    assert float(content_loss(feats(out), feats(c))) < 0.8
    s = imaging.load_image(painting)
    s = s.resize((256, round(256 * s.size[1] / s.size[0])), Image.LANCZOS)
    assert style_distance(out, s) < 0.5 * style_distance(c, s)


def test_bad_style_loss_is_a_clear_error(photo, tmp_path, capsys):
    with pytest.raises(RestyleError, match="--style-loss must be one of gram, "):
        restyle.transfer(photo, stripes(32), style_loss="fancy")
    with pytest.raises(RestyleError, match="unknown style loss 'fancy'"):
        get_style_loss("fancy")
    assert main(["transfer", str(photo), str(photo), "--style-loss", "fancy",
                 "-o", str(tmp_path / "o.png")]) == 2
    assert "--style-loss: invalid choice: 'fancy'" in capsys.readouterr().err
