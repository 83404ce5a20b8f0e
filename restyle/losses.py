"""Loss terms: small pure functions of feature maps (N, C, H, W) or images.

Every distance here is *relative*: divided by the size of its target, so a
value of 0.1 means "10 % off" whatever the image, layer or network. That is
what lets one set of weights (and one ``strength`` knob) behave the same
across images and layers.

Style losses see a feature map as a *distribution*: the C-channel feature
vectors at the H*W positions are samples (Li et al. 2017, "Demystifying neural
style transfer"). Each style loss takes an optional ``mask`` of shape
(N or 1, 1, H, W) with non-negative values: the samples are then weighted by
it, so the statistics describe one region only (the guided Gram matrices of
Gatys et al. 2017, "Controlling perceptual factors", generalised to every
statistic). Without a mask every position weighs 1/(H*W).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint


def _sample_weights(mask: torch.Tensor | None, n: int, h: int, w: int,
                    like: torch.Tensor) -> torch.Tensor:
    """Per-position sample weights (N or 1, H*W) that sum to 1 per image."""
    if mask is None:
        return like.new_full((1, h * w), 1.0 / (h * w), dtype=torch.float32)
    if mask.ndim != 4 or mask.shape[1] != 1 or tuple(mask.shape[-2:]) != (h, w) or \
            mask.shape[0] not in (1, n):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not fit features "
                         f"({n}, C, {h}, {w}); expected ({n} or 1, 1, {h}, {w})")
    m = mask.detach().float().reshape(mask.shape[0], h * w)
    return m / m.sum(1, keepdim=True).clamp_min(1e-12)


def feature_samples(features: torch.Tensor, mask: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """A feature map as weighted samples: (N, H*W, C) float32 vectors and (N or 1, H*W)
    weights summing to 1 (uniform, or proportional to ``mask``)."""
    n, c, h, w = features.shape
    x = features.permute(0, 2, 3, 1).reshape(n, h * w, c).float()
    return x, _sample_weights(mask, n, h, w, x)


class _SelfProduct(torch.autograd.Function):
    """``f^T f`` for a batch ``f`` (N, M, C), with the gradient ``f (g + g^T)`` as one matrix
    product. Autograd would see ``f`` used twice and compute two products plus their sum
    over the whole (N, M, C) map; at relu1_1 of a 512 px image that sum alone was 17 ms of a
    265 ms Gatys iteration."""

    @staticmethod
    def forward(ctx, f: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(f)
        return torch.bmm(f.transpose(1, 2), f)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        (f,) = ctx.saved_tensors
        return torch.bmm(f, (g + g.transpose(1, 2)).to(f.dtype))


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix G = F F^T / (H W) per image: (N, C, H, W) -> (N, C, C), returned in float32.

    Gatys et al. (2015): the channel co-activation statistics, which discard
    where things are and keep what textures look like. With a ``mask`` it is the
    guided Gram matrix of Gatys et al. (2017): sum_i m_i f_i f_i^T / sum_i m_i, the
    second moment of the features inside the region.
    """
    n, c, h, w = features.shape
    # (N, HW, C) is a free view of channels-last maps, so no copy is made; bfloat16
    # features are multiplied in bfloat16 (fp32 accumulation) on the CPU's matrix units.
    f = features.permute(0, 2, 3, 1).reshape(n, h * w, c)
    if f.dtype not in (torch.bfloat16, torch.float16):
        f = f.float()
    if mask is None:
        return _SelfProduct.apply(f).float() / (h * w)
    wts = _sample_weights(mask, n, h, w, f).to(f.dtype)
    return torch.bmm(f.transpose(1, 2), f * wts.unsqueeze(-1)).float()


def relative_mse(x: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """||x - t||^2 / ||t||^2: a scale-free squared distance (0 when equal)."""
    x, target = x.float(), target.float()
    return (x - target).pow(2).mean() / (target.pow(2).mean() + eps)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Feature reconstruction loss (Gatys et al. 2016, eq. 1), relative to the target."""
    return relative_mse(features, target)


def gram_loss(features: torch.Tensor, target_gram: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Style loss on one layer (Gatys et al. 2016, eq. 4), relative to the target Gram.

    Equal to :func:`mmd2` with the kernel (x.y)^2, divided by the target's E k(y, y').
    """
    return relative_mse(gram_matrix(features, mask), target_gram)


# ----------------------------------------------------------------------------- mean and std

def channel_mean_std(features: torch.Tensor, mask: torch.Tensor | None = None,
                     eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation, (N, C) each (weighted by ``mask``)."""
    x, wts = feature_samples(features, mask)
    wts = wts.unsqueeze(-1)
    mean = (wts * x).sum(1)
    var = (wts * (x - mean.unsqueeze(1)).pow(2)).sum(1)
    return mean, (var + eps).sqrt()


def mean_std_loss(features: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Match each channel's mean and standard deviation (the batch-normalisation statistics).

    Li et al. (2017), "Demystifying neural style transfer", section 4.2: an MMD-like
    style loss that ignores channel correlations; the statistics AdaIN transfers.
    Relative: (|mu - mu_t|^2 + |sigma - sigma_t|^2) / (|mu_t|^2 + |sigma_t|^2).
    """
    mean, std = channel_mean_std(features, mask)
    num = (mean - target_mean).pow(2).sum(-1) + (std - target_std).pow(2).sum(-1)
    den = target_mean.pow(2).sum(-1) + target_std.pow(2).sum(-1)
    return (num / den.clamp_min(1e-12)).mean()


# ----------------------------------------------------------------------------- mean and covariance

def mean_covariance(features: torch.Tensor, mask: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (N, C) and covariance (N, C, C) of the feature vectors, in float32."""
    x, wts = feature_samples(features, mask)
    mean = (wts.unsqueeze(-1) * x).sum(1)
    xc = x - mean.unsqueeze(1)
    cov = torch.bmm(xc.transpose(1, 2), xc * wts.unsqueeze(-1))
    return mean, 0.5 * (cov + cov.transpose(1, 2))


def psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a positive semi-definite matrix (batched), in float64."""
    vals, vecs = torch.linalg.eigh(matrix.double())
    return (vecs * vals.clamp_min(0).sqrt().unsqueeze(-2)) @ vecs.transpose(-1, -2)


def w2_ridge(target_cov: torch.Tensor, ridge: float = 1e-2) -> torch.Tensor:
    """The regularisation added to both covariances: ``ridge`` times the mean variance."""
    c = target_cov.shape[-1]
    return ridge * torch.diagonal(target_cov, dim1=-2, dim2=-1).sum(-1) / c


def gaussian_w2_loss(features: torch.Tensor, target_mean: torch.Tensor,
                     target_cov: torch.Tensor, target_cov_sqrt: torch.Tensor | None = None,
                     mask: torch.Tensor | None = None, ridge: float = 1e-2) -> torch.Tensor:
    """Squared Wasserstein-2 distance between Gaussians fitted to the features and the target.

    W2^2 = |mu - mu_t|^2 + tr C + tr C_t - 2 tr (S C S)^(1/2),  S = C_t^(1/2)
    (Dowson & Landau 1982; as a style loss: Mroueh 2019, Kalischek et al. 2021). The
    trace term is the sum of the square roots of the eigenvalues of S C S, whose
    gradient (V diag(1 / 2 sqrt(lambda)) V^T) has no eigen-gap terms, so it is stable.
    Both covariances get ``ridge`` times the target's mean variance on the diagonal, which
    bounds that gradient where the output's covariance is rank-deficient.
    ``target_cov_sqrt`` is S = (C_t + ridge)^(1/2), precomputed once per style (see
    :func:`psd_sqrt`). Relative: divided by |mu_t|^2 + tr C_t.
    """
    mean, cov = mean_covariance(features, mask)
    delta = w2_ridge(target_cov.double(), ridge)
    eye = torch.eye(cov.shape[-1], dtype=torch.float64)
    tc = target_cov.double() + delta[..., None, None] * eye
    s = psd_sqrt(tc) if target_cov_sqrt is None else target_cov_sqrt.double()
    c = cov.double() + delta[..., None, None] * eye
    m = s @ c @ s
    m = 0.5 * (m + m.transpose(-1, -2))
    floor = (delta * delta).unsqueeze(-1) * 1e-3
    cross = torch.linalg.eigvalsh(m).clamp_min(floor).sqrt().sum(-1)
    trace = lambda a: torch.diagonal(a, dim1=-2, dim2=-1).sum(-1)
    w2 = (mean.double() - target_mean.double()).pow(2).sum(-1) + trace(c) + trace(tc) - 2 * cross
    norm = target_mean.double().pow(2).sum(-1) + trace(target_cov.double())
    return (w2 / norm.clamp_min(1e-12)).mean().float()


# ----------------------------------------------------------------------------- MMD

def linear_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x, y) = x.y for all pairs of rows: (n, C), (m, C) -> (n, m)."""
    return x @ y.transpose(-1, -2)


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, c: float = 1.0, degree: int = 2
                      ) -> torch.Tensor:
    """k(x, y) = (c + x.y)^degree for all pairs of rows."""
    return (x @ y.transpose(-1, -2) + c) ** degree


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """k(x, y) = exp(-|x - y|^2 / (2 sigma^2)) for all pairs of rows."""
    d2 = (x.pow(2).sum(-1, keepdim=True) + y.pow(2).sum(-1).unsqueeze(-2)
          - 2 * x @ y.transpose(-1, -2)).clamp_min(0)
    return torch.exp(-d2 / (2 * sigma * sigma))


Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, wx: torch.Tensor | None = None,
         wy: torch.Tensor | None = None) -> torch.Tensor:
    """Squared maximum mean discrepancy between two weighted sample sets (rows of x and y).

    MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y) (the biased V-statistic; Gretton et
    al. 2012), with sample weights ``wx``, ``wy`` summing to 1 (uniform if None). This
    is the definition, at O(n m) cost; the style losses below evaluate the same
    quantity through a kernel's feature map in O(n) so every position takes part.
    """
    wx = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=x.dtype) if wx is None else wx
    wy = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=y.dtype) if wy is None else wy
    return wx @ kernel(x, x) @ wx + wy @ kernel(y, y) @ wy - 2 * wx @ kernel(x, y) @ wy


def mmd_linear_loss(features: torch.Tensor, target_mean: torch.Tensor,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """MMD with the linear kernel x.y, relative to the target's E k(y, y') = |mu_t|^2.

    The linear kernel's feature map is x itself, so MMD^2 = |mu - mu_t|^2: it matches
    the mean activation of each channel and nothing else (Li et al. 2017). In the same
    way the Gram loss is the linear-kernel MMD of the second-order features x x^T.
    """
    x, wts = feature_samples(features, mask)
    mean = (wts.unsqueeze(-1) * x).sum(1)
    return ((mean - target_mean).pow(2).sum(-1) /
            target_mean.pow(2).sum(-1).clamp_min(1e-12)).mean()


def augmented_gram(features: torch.Tensor, c: float | torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix of the features with a constant channel sqrt(c) appended: (N, C+1, C+1).

    [[E x x^T, sqrt(c) E x], [sqrt(c) E x^T, c]]: the mean embedding of the kernel
    (c + x.y)^2, whose feature map is vec(x~ x~^T) with x~ = (x, sqrt(c)). Assembled
    from :func:`gram_matrix` (its fast bfloat16 path) and the channel means.
    """
    n, ch, h, w = features.shape
    g = gram_matrix(features, mask)
    if mask is None:
        mean = features.float().mean((2, 3))
    else:
        wts = _sample_weights(mask, n, h, w, features).reshape(-1, 1, h, w)
        mean = (features.float() * wts).sum((2, 3))
    root = torch.sqrt(torch.as_tensor(c, dtype=torch.float32))
    top = torch.cat([g, (root * mean).unsqueeze(-1)], -1)
    bottom = torch.cat([root * mean, (root * root).expand(n, 1)], -1).unsqueeze(1)
    return torch.cat([top, bottom], 1)


def mmd_poly_loss(features: torch.Tensor, target: torch.Tensor, c: float | torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """MMD with the polynomial kernel (c + x.y)^2, relative to the target's E k(y, y').

    Li et al. (2017): with c = 0 this is exactly the Gram loss; c > 0 adds the channel
    means with weight 2c (MMD^2 = |G - G_t|^2 + 2c |mu - mu_t|^2). Degree 2 is the
    degree whose feature map (the augmented Gram matrix) stays small; ``target`` is
    the style's :func:`augmented_gram`.
    """
    return relative_mse(augmented_gram(features, c, mask), target)


def random_fourier_embedding(features: torch.Tensor, freqs: torch.Tensor, phases: torch.Tensor,
                             mask: torch.Tensor | None = None, chunk: int = 16384) -> torch.Tensor:
    """Mean random Fourier feature sqrt(2/D) cos(x W + b) of the samples: (N, D).

    Rahimi & Recht (2007): with W ~ N(0, 1/sigma^2) and b ~ U(0, 2 pi) the inner
    product of these features approximates the Gaussian kernel of width sigma. Long
    maps are processed in chunks whose activations are recomputed on the backward
    pass, so memory stays at O(chunk * D).
    """
    x, wts = feature_samples(features, mask)
    d = freqs.shape[-1]
    scale = math.sqrt(2.0 / d)

    def part(xc, wc):  # (N, 1, P) @ (N, P, D): the weighted mean as one matrix product
        return torch.matmul(wc.unsqueeze(1), torch.cos(xc @ freqs + phases)).squeeze(1) * scale

    out = None
    for i in range(0, x.shape[1], chunk):
        xc, wc = x[:, i:i + chunk], wts[:, i:i + chunk]
        e = checkpoint(part, xc, wc, use_reentrant=False) if x.requires_grad else part(xc, wc)
        out = e if out is None else out + e
    return out


def mmd_gauss_loss(features: torch.Tensor, target: torch.Tensor, freqs: torch.Tensor,
                   phases: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """MMD with a Gaussian kernel, relative to the target's E k(y, y').

    Li et al. (2017). Evaluated through random Fourier features (see
    :func:`random_fourier_embedding`): MMD^2 ~ |E phi(x) - E phi(y)|^2 with every
    position of the output taking part; ``target`` is the style's mean feature.
    """
    e = random_fourier_embedding(features, freqs, phases, mask)
    return ((e - target).pow(2).sum(-1) / target.pow(2).sum(-1).clamp_min(1e-12)).mean()


# ----------------------------------------------------------------------------- sliced Wasserstein

def sort_last(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.sort(values, dim=-1)``, differentiable in the values, faster on the CPU.

    On the CPU numpy's vectorised argsort of float64 keys is several times faster than
    ``torch.sort`` (measured 0.3 s against 1.6 s for 64 x 49k values); the values are
    then gathered in torch, so gradients flow as through ``torch.sort``.
    """
    if values.device.type == "cpu":
        order = torch.from_numpy(np.argsort(values.detach().double().numpy(), axis=-1))
    else:
        order = torch.argsort(values, dim=-1)
    return values.gather(-1, order), order


def weighted_quantiles(values: torch.Tensor, weights: torch.Tensor | None, levels: torch.Tensor
                       ) -> torch.Tensor:
    """Quantile function of weighted samples at ``levels`` in [0, 1]: (K, M) -> (K, Q).

    Sample j (in sorted order) sits at the middle of its probability mass,
    sum_{i<j} w_i + w_j / 2; between those points the quantile function is linear,
    beyond them constant. So sample sets of any size (and mixtures) give quantiles on
    a common grid.
    """
    if weights is not None:  # samples without weight (masked out, zero blend weight) drop out
        keep = weights > 0
        values, weights = values[:, keep], weights[keep]
    k, m = values.shape
    w = torch.full((m,), 1.0 / m, dtype=torch.float64) if weights is None else \
        weights.double() / weights.double().sum()
    v, order = sort_last(values.double())
    ws = w[order]
    pos = torch.cumsum(ws, 1) - 0.5 * ws
    q = levels.double().reshape(1, -1).expand(k, -1).contiguous()
    hi = torch.searchsorted(pos.contiguous(), q).clamp(1, max(m - 1, 1))
    lo = hi - 1
    if m == 1:
        return v.expand(k, q.shape[1]).float()
    p0, p1 = pos.gather(1, lo), pos.gather(1, hi)
    v0, v1 = v.gather(1, lo), v.gather(1, hi)
    t = ((q - p0) / (p1 - p0).clamp_min(1e-15)).clamp(0, 1)
    return (v0 + t * (v1 - v0)).float()


def quantile_levels(n: int) -> torch.Tensor:
    """The uniform grid (j + 1/2) / n, j = 0..n-1."""
    return (torch.arange(n, dtype=torch.float64) + 0.5) / n


def sliced_wasserstein_loss(features: torch.Tensor, directions: torch.Tensor,
                            target_quantiles: torch.Tensor,
                            mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sliced Wasserstein-2 distance between the feature distribution and a target.

    The features are projected on K unit ``directions`` (C, K); in one dimension the
    optimal transport sorts both sides, so each sorted projection is compared with the
    target's quantile function (``target_quantiles``, (K, Q) on the grid
    :func:`quantile_levels`) at the output samples' own quantile levels, interpolated
    linearly: output and style may have any numbers of samples (Rabin et al. 2011;
    as a texture and style loss: Heitz et al. 2021). Relative: divided by the target's
    mean squared projection.
    """
    x, wts = feature_samples(features, mask)
    proj = torch.matmul(directions.float().t(), x.transpose(1, 2))  # (N, K, P)
    n, k, p = proj.shape
    xs, order = sort_last(proj)
    if mask is None:
        ws = wts.new_full((1, 1, p), 1.0 / p)
        levels = quantile_levels(p).float().reshape(1, 1, p).expand(n, k, p)
    else:
        ws = wts.unsqueeze(1).expand(n, k, p).gather(2, order)
        levels = torch.cumsum(ws, 2) - 0.5 * ws
    q = target_quantiles.shape[-1]
    pos = (levels * q - 0.5).clamp(0, q - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=q - 1)
    frac = pos - lo.float()
    tq = target_quantiles.float().unsqueeze(0).expand(n, k, q)
    t = tq.gather(2, lo) * (1 - frac) + tq.gather(2, hi) * frac
    sw = (ws * (xs - t).pow(2)).sum(2).mean(-1)
    return (sw / target_quantiles.float().pow(2).mean().clamp_min(1e-12)).mean()


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (a smoothness prior)."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()



def mrf_loss(features: torch.Tensor, style_patches: torch.Tensor, index: torch.Tensor,
             patch_size: int = 3, stride: int = 1) -> torch.Tensor:
    """MRF (patch) style loss of Li & Wand (2016), relative to its target.

    ``index`` assigns each ``k x k`` patch of ``features`` (one map; patches on a grid of
    ``stride``, in raster order) a row of ``style_patches`` (``(L, C k^2)``), usually its
    nearest neighbour by normalised cross-correlation (:func:`restyle.patches.ncc_match`).
    The matched patches, put back in place and averaged where they overlap, form the target

    .. math::
        T(x) = \\frac{1}{|\\{i : x \\in i\\}|} \\sum_{i \\ni x} \\Psi_{NN(i)}(s)(x),
        \\qquad E = \\frac{\\sum_x \\lVert F(x) - T(x) \\rVert^2}{\\sum_x \\lVert T(x) \\rVert^2}

    Since :math:`\\sum_i \\lVert \\Psi_i(F) - \\Psi_{NN(i)} \\rVert^2 = \\sum_x c(x)
    \\lVert F(x) - T(x) \\rVert^2 + \\text{const}` (``c(x)`` patches cover ``x``), this is the
    paper's energy up to a constant for stride 1 (away from the border), and its gradient
    is the count-normalised one of Li & Wand's code for any stride. Positions no patch
    covers (right and bottom remainders of the grid) do not count.
    """
    k, s = patch_size, stride
    if s > k:
        raise ValueError(f"a stride of {s} leaves gaps between {k}x{k} patches")
    h, w = features.shape[-2:]
    hc, wc = (h - k) // s * s + k, (w - k) // s * s + k  # the part the patch grid covers
    chosen = style_patches.index_select(0, index).float().T.unsqueeze(0)  # (1, C k^2, P)
    target = torch.nn.functional.fold(chosen, (hc, wc), k, stride=s)
    count = torch.nn.functional.fold(torch.ones(1, k * k, index.numel()), (hc, wc), k, stride=s)
    target = target / count
    x = features[..., :hc, :wc].float()
    return (x - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-12)
