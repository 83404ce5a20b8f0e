"""Feature transforms for one-pass style transfer: AdaIN, WCT, style-swap and blending.

Pure functions of feature maps ``(N, C, H, W)`` (any float dtype; the statistics
are computed in float32, WCT's eigendecompositions in float64). A content batch
of N images may be paired with a style batch of N, or of 1 that is used for all.
The result has the content's shape and dtype; a trained decoder
(:mod:`restyle.nets.decoder`) turns it back into an image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import RestyleError


def channel_stats(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and standard deviation, each ``(N, C, 1, 1)`` float32.

    .. math::
        \\mu_{nc} = \\frac{1}{HW} \\sum_{hw} F_{nchw}, \\qquad
        \\sigma_{nc} = \\sqrt{\\frac{1}{HW} \\sum_{hw} (F_{nchw} - \\mu_{nc})^2 + \\epsilon}

    (population variance; ``eps`` keeps sigma away from zero for constant channels).
    """
    if feat.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) features, got shape {tuple(feat.shape)}")
    f = feat.float()
    mean = f.mean(dim=(2, 3), keepdim=True)
    var = (f - mean).pow(2).mean(dim=(2, 3), keepdim=True)
    return mean, (var + eps).sqrt()


def _pair(content: torch.Tensor, style: torch.Tensor) -> None:
    if style.ndim != 4 or content.ndim != 4:
        raise ValueError("content and style features must both be (N, C, H, W)")
    if style.shape[1] != content.shape[1]:
        raise RestyleError(f"content and style features have {content.shape[1]} and "
                           f"{style.shape[1]} channels; take them from the same layer")
    if style.shape[0] not in (1, content.shape[0]):
        raise RestyleError(f"a style batch of {style.shape[0]} cannot be paired with a content "
                           f"batch of {content.shape[0]} (use 1 or the same number)")


def adain(content_feat: torch.Tensor, style_feat: torch.Tensor | None = None, eps: float = 1e-5,
          *, style_mean: torch.Tensor | None = None, style_std: torch.Tensor | None = None,
          content_mean: torch.Tensor | None = None, content_std: torch.Tensor | None = None
          ) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017, eq. 8).

    .. math::
        \\mathrm{AdaIN}(x, y) = \\sigma(y) \\, \\frac{x - \\mu(x)}{\\sigma(x)} + \\mu(y)

    with the channel statistics of :func:`channel_stats`: every channel of the
    content features is shifted and scaled to the style's mean and standard
    deviation, keeping its spatial layout. Give either ``style_feat`` or the
    style statistics directly (``style_mean`` and ``style_std``, broadcastable to
    ``(N, C, 1, 1)``, e.g. an average over several style images). ``content_mean`` and
    ``content_std`` replace the content statistics, e.g. by those of the whole image
    when ``content_feat`` is one tile of it (:mod:`restyle.tiling`).
    """
    if style_feat is not None:
        if style_mean is not None or style_std is not None:
            raise ValueError("give style_feat or style_mean/style_std, not both")
        _pair(content_feat, style_feat)
        style_mean, style_std = channel_stats(style_feat, eps)
    elif style_mean is None or style_std is None:
        raise ValueError("adain needs style_feat, or both style_mean and style_std")
    if content_mean is None or content_std is None:
        mean, std = channel_stats(content_feat, eps)
    else:
        mean, std = content_mean.float(), content_std.float()
    out = (content_feat.float() - mean) / std * style_std.float() + style_mean.float()
    return out.to(content_feat.dtype)


def _sym_power(cov: torch.Tensor, power: float, eps: float) -> torch.Tensor:
    """cov^power for a symmetric PSD matrix (float64): E diag(max(d, eps)^power) E^T."""
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(eps).pow(power)
    return (vecs * vals) @ vecs.T


def wct(content_feat: torch.Tensor, style_feat: torch.Tensor, eps: float = 1e-5, *,
        content_mean: torch.Tensor | None = None, content_cov: torch.Tensor | None = None
        ) -> torch.Tensor:
    """Whitening and colouring transform (Li et al. 2017, "Universal style transfer").

    Per image, with features flattened to ``f`` of shape (C, HW) and centred
    (``fbar = f - m``), covariance ``S = fbar fbar^T / HW + eps I = E D E^T``:

    .. math::
        \\hat f_c = E_c D_c^{-1/2} E_c^T \\bar f_c \\qquad (\\mathrm{cov}(\\hat f_c) = I)

        f_{cs} = E_s D_s^{1/2} E_s^T \\hat f_c + m_s

    so the output has the style's mean and full channel covariance (not only the
    per-channel variances AdaIN matches) while keeping the content's spatial
    arrangement. ``eps`` regularises the covariances (and floors the eigenvalues,
    as Li et al. drop the near-zero ones). Computed in float64; blend with the
    content features by :func:`blend` for a style strength below 1. ``content_mean``
    (C,) and ``content_cov`` (C, C) replace the content statistics, e.g. by those of the
    whole image when ``content_feat`` is one tile of it (:mod:`restyle.tiling`).
    """
    _pair(content_feat, style_feat)
    n, c, h, w = content_feat.shape
    out = torch.empty(n, c, h * w, dtype=torch.float64, device=content_feat.device)
    eye = torch.eye(c, dtype=torch.float64, device=content_feat.device)
    colour_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for i in range(n):
        j = 0 if style_feat.shape[0] == 1 else i
        if j not in colour_cache:
            fs = style_feat[j].reshape(c, -1).double()
            ms = fs.mean(1, keepdim=True)
            fs = fs - ms
            cov_s = fs @ fs.T / fs.shape[1] + eps * eye
            colour_cache[j] = (_sym_power(cov_s, 0.5, eps), ms)
        colour, ms = colour_cache[j]
        fc = content_feat[i].reshape(c, -1).double()
        if content_mean is None or content_cov is None:
            fc = fc - fc.mean(1, keepdim=True)
            cov_c = fc @ fc.T / fc.shape[1] + eps * eye
        else:
            fc = fc - content_mean.double().reshape(c, 1)
            cov_c = content_cov.double() + eps * eye
        whitened = _sym_power(cov_c, -0.5, eps) @ fc
        out[i] = colour @ whitened + ms
    return out.reshape(n, c, h, w).to(content_feat.dtype)


def blend(content_feat: torch.Tensor, stylized_feat: torch.Tensor, alpha: float) -> torch.Tensor:
    """Style strength: ``alpha * stylized + (1 - alpha) * content`` (alpha in [0, 1]).

    Huang & Belongie (2017) and Li et al. (2017) both control the strength of a
    one-pass transfer this way, by interpolating in feature space before decoding.
    """
    if not 0.0 <= alpha <= 1.0:
        raise RestyleError(f"style strength alpha must be between 0 and 1, not {alpha}")
    return torch.lerp(content_feat.float(), stylized_feat.float(), alpha).to(content_feat.dtype)


def style_swap(content_feat: torch.Tensor, style_feat: torch.Tensor, patch_size: int = 3,
               eps: float = 1e-8, max_chunk_bytes: int = 128 << 20) -> torch.Tensor:
    """Style swap (Chen & Schmidt 2016, "Fast patch-based style transfer of arbitrary style").

    Every ``k x k`` patch of the content features (stride 1) is replaced by the style
    patch it correlates with best after normalising the style patches, and the
    overlapping replacements are averaged. With the style patches
    :math:`\\phi_j(S)` and :math:`\\hat\\phi_j = \\phi_j / \\lVert\\phi_j\\rVert`:

    .. math::
        j^*(p) = \\arg\\max_j \\, \\langle \\phi_p(C), \\hat\\phi_j(S) \\rangle
               = \\arg\\max_j \\, \\operatorname{conv2d}(C, \\hat\\phi)_{j, p}

        \\mathrm{SS}(C, S)_x = \\frac{1}{\\lvert\\{p \\ni x\\}\\rvert}
            \\sum_{p \\ni x} \\phi_{j^*(p)}(S)_x

    Dividing by the content patch's norm would not change the argmax, so only the
    style patches are normalised: the choice is invariant to the scale of either input
    and the output is built only from (un-normalised) style values. The paper writes the
    second step as a transposed convolution of the one-hot argmax map with the style
    patches, divided by the overlap counts; gathering the chosen patches and folding
    them (``F.fold``) is the same sum without the ``L x H x W`` one-hot tensor and
    without a second convolution over all ``L`` patches.

    Memory: the correlation maps of all style patches would take ``L * H * W`` floats
    (about 1 GB for 512 px content and style at relu3_1), so the patches are processed
    in chunks whose maps fit in ``max_chunk_bytes``, keeping the running maximum; what
    remains is linear in the sizes (the unfolded style patches and the chosen ones,
    ``C k^2`` floats per position each).
    The correlation runs in float32, or bfloat16 under ``torch.autocast``; the output
    has the content's shape and dtype. ``style_feat`` is a batch of 1 (used for every
    content image) or of N.
    """
    _pair(content_feat, style_feat)
    k = int(patch_size)
    n, c, h, w = content_feat.shape
    hs, ws = style_feat.shape[-2:]
    if k < 1:
        raise RestyleError(f"the style-swap patch size must be at least 1, not {patch_size}")
    if min(h, w, hs, ws) < k:
        raise RestyleError(f"features of {h}x{w} (content) and {hs}x{ws} (style) are too small "
                           f"for {k}x{k} patches; use larger images or a smaller patch size")
    hp, wp = h - k + 1, w - k + 1  # patch positions in the content ("valid" correlation)
    chunk = max(1, max_chunk_bytes // (4 * hp * wp))
    count = F.fold(torch.ones(1, k * k, hp * wp, device=content_feat.device), (h, w), k)
    out = []
    for i in range(n):
        j = 0 if style_feat.shape[0] == 1 else i
        patches = F.unfold(style_feat[j:j + 1].float(), k)[0].T  # (L, C*k*k), un-normalised
        norms = patches.norm(dim=1).clamp_min(eps)
        x = content_feat[i:i + 1].float()
        best = torch.full((hp * wp,), float("-inf"), device=x.device)
        index = torch.zeros(hp * wp, dtype=torch.long, device=x.device)
        for start in range(0, patches.shape[0], chunk):
            kernel = (patches[start:start + chunk] / norms[start:start + chunk, None])
            corr = F.conv2d(x, kernel.view(-1, c, k, k))[0].flatten(1).float()  # (B, hp*wp)
            value, arg = corr.max(0)
            better = value > best  # strict: ties keep the first patch, as argmax does
            best = torch.where(better, value, best)
            index = torch.where(better, arg + start, index)
        chosen = patches[index].T.unsqueeze(0)  # (1, C*k*k, hp*wp)
        out.append(F.fold(chosen, (h, w), k) / count)
    return torch.cat(out).to(content_feat.dtype)
