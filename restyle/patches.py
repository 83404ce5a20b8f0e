"""Patches of feature maps: extraction, nearest neighbours by normalised cross-correlation,
and PatchMatch nearest-neighbour fields.

Two kinds of patch search serve the patch-based methods:

* **All-pairs NCC matching** (:func:`ncc_match`), for the MRF loss (Li & Wand 2016) and
  semantic style transfer (Champandard 2016). Every ``k x k`` patch :math:`x_i` of a feature
  map (on a grid of stride ``s``) gets the style patch :math:`\\phi_j` with the highest
  normalised cross-correlation,

  .. math::
      j^*(i) = \\arg\\max_j \\frac{\\langle x_i, \\phi_j \\rangle}{\\lVert \\phi_j \\rVert},

  which is the argmax of the correlation of :math:`x` with the normalised style patches used
  as convolution kernels (dividing by :math:`\\lVert x_i \\rVert` would not change it). Here
  the convolution is written as one matrix product of the unfolded map with the patch matrix,
  in chunks of patches so that the ``L x P`` score matrix never has to exist at once.

* **PatchMatch** (Barnes et al. 2009), for deep image analogy (Liao et al. 2017): a
  nearest-neighbour field (NNF) ``nnf[y, x] = (y', x')`` from a source map to a target map
  that minimises the patch distance

  .. math::
      D(p, q) = \\sum_{d \\in [-r, r]^2} \\lVert S(p + d) - T(q + d) \\rVert^2

  by alternating propagation (a neighbour's match, shifted, is a candidate) and random search
  (candidates in windows that halve around the current match). Only improvements are
  accepted, so the total distance never increases. All positions are updated at once
  (vectorised), so one iteration costs a few full-map gathers. :func:`exact_nnf` finds the
  true minimiser by brute force for small maps (tests, and the coarsest layer of an analogy).

Positions outside a map are clamped to its border (replicate padding), for source and
target alike. Maps are ``(C, H, W)`` or ``(1, C, H, W)``; NNFs are ``(H, W, 2)`` long tensors
of (row, column) in the target.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import RestyleError


# ----------------------------------------------------------------------------- extraction

def _batch1(feat: torch.Tensor) -> torch.Tensor:
    if feat.ndim == 3:
        return feat.unsqueeze(0)
    if feat.ndim != 4 or feat.shape[0] != 1:
        raise ValueError(f"expected one (C, H, W) or (1, C, H, W) map, got {tuple(feat.shape)}")
    return feat


def grid_shape(height: int, width: int, size: int, stride: int = 1) -> tuple[int, int]:
    """Number of ``size x size`` patch positions (rows, columns) at ``stride`` ("valid")."""
    return (height - size) // stride + 1, (width - size) // stride + 1


def extract_patches(feat: torch.Tensor, size: int = 3, stride: int = 1) -> torch.Tensor:
    """All ``size x size`` patches of one map on a ``stride`` grid as rows ``(L, C*size*size)``.

    Rows are in raster order of the patch positions; each row is laid out channel-major
    (``c, dy, dx``), so the patches of ``cat([a, b], channels)`` are
    ``cat([patches(a), patches(b)], 1)``.
    """
    feat = _batch1(feat)
    h, w = feat.shape[-2:]
    if min(h, w) < size:
        raise RestyleError(f"a {h}x{w} feature map is too small for {size}x{size} patches; "
                           "use a larger image or a smaller patch size")
    return F.unfold(feat, size, stride=stride)[0].T.contiguous()


def normalize_patches(patches: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Patch rows scaled to unit length (zero patches stay zero), in their own dtype."""
    norms = patches.float().norm(dim=1, keepdim=True).clamp_min(eps)
    return (patches.float() / norms).to(patches.dtype)


def ncc_match(feat: torch.Tensor, patches: torch.Tensor, size: int = 3, stride: int = 1,
              normalized: bool = False, max_chunk_bytes: int = 64 << 20
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Best style patch for every patch of ``feat`` by normalised cross-correlation.

    ``feat`` is one map ``(C, H, W)``; ``patches`` are ``(L, C*size*size)`` rows as from
    :func:`extract_patches`, already unit length if ``normalized`` (see
    :func:`normalize_patches`; normalise once when matching the same patches many times).
    Returns ``(index, score)``, each of length ``P = hp * wp`` (the positions of
    :func:`grid_shape` in raster order): the chosen row of ``patches`` and its correlation
    with the normalised patch. The products run in the dtype of ``patches`` (pass bfloat16
    patches for speed); ties keep the first patch.
    """
    x = _batch1(feat)
    d = patches.shape[1]
    if x.shape[1] * size * size != d:
        raise RestyleError(f"feature patches have {x.shape[1] * size * size} values but the "
                           f"style patches {d}; take them from the same layer")
    if not normalized:
        patches = normalize_patches(patches)
    cols = F.unfold(x.to(patches.dtype), size, stride=stride)[0].T  # (P, D)
    n_pos = cols.shape[0]
    chunk = max(1, max_chunk_bytes // (patches.element_size() * n_pos))
    best = torch.full((n_pos,), float("-inf"), device=x.device)
    index = torch.zeros(n_pos, dtype=torch.long, device=x.device)
    for start in range(0, patches.shape[0], chunk):
        scores = cols @ patches[start:start + chunk].T  # (P, B): reduce along rows
        value, arg = scores.max(1)
        value = value.float()
        better = value > best  # strict: ties keep the earlier patch
        best = torch.where(better, value, best)
        index = torch.where(better, arg + start, index)
    return index, best


# ----------------------------------------------------------------------------- NNF helpers

def normalize_features(feat: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each position's channel vector divided by its length: ``F(p) / |F(p)|`` (zeros stay 0)."""
    return feat / feat.norm(dim=-3, keepdim=True).clamp_min(eps)


def random_nnf(src_hw: tuple[int, int], tgt_hw: tuple[int, int],
               generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random field ``(H, W, 2)`` into a target of ``tgt_hw``."""
    h, w = src_hw
    y = torch.randint(0, tgt_hw[0], (h, w), generator=generator)
    x = torch.randint(0, tgt_hw[1], (h, w), generator=generator)
    return torch.stack([y, x], -1)


def _clamp_nnf(nnf: torch.Tensor, tgt_hw: tuple[int, int]) -> torch.Tensor:
    return torch.stack([nnf[..., 0].clamp(0, tgt_hw[0] - 1), nnf[..., 1].clamp(0, tgt_hw[1] - 1)], -1)


class _PatchCost:
    """Patch distances ``D(p, nnf(p))`` of a source and a target map, for any candidate field.

    The maps are padded by replication and kept channel-last, so that gathering the target
    vectors of all positions for one patch offset is a row gather.
    """

    def __init__(self, src: torch.Tensor, tgt: torch.Tensor, size: int):
        src, tgt = _batch1(src).float(), _batch1(tgt).float()
        if src.shape[1] != tgt.shape[1]:
            raise RestyleError(f"source and target maps have {src.shape[1]} and {tgt.shape[1]} "
                               "channels; take them from the same layer")
        if size < 1 or size % 2 == 0:
            raise ValueError(f"the patch size must be odd and positive, not {size}")
        self.size, self.r = size, size // 2
        r = self.r
        self.h, self.w = src.shape[-2:]
        self.th, self.tw = tgt.shape[-2:]
        pad = (r, r, r, r)
        self.src = F.pad(src, pad, mode="replicate")[0].permute(1, 2, 0).contiguous() if r else \
            src[0].permute(1, 2, 0).contiguous()
        tp = F.pad(tgt, pad, mode="replicate")[0] if r else tgt[0]
        self.tw_pad = tp.shape[-1]
        self.tgt = tp.permute(1, 2, 0).reshape(-1, tp.shape[0]).contiguous()  # (Hp*Wp, C)

    def __call__(self, nnf: torch.Tensor) -> torch.Tensor:
        """``(H, W)`` patch distances of the field ``nnf`` (must lie inside the target)."""
        k = self.size
        out = torch.zeros(self.h, self.w)
        base = nnf[..., 0] * self.tw_pad + nnf[..., 1]  # padded index of the patch's corner
        for dy in range(k):
            for dx in range(k):
                s = self.src[dy:dy + self.h, dx:dx + self.w]  # (H, W, C)
                t = self.tgt.index_select(0, (base + dy * self.tw_pad + dx).reshape(-1))
                diff = s.reshape(-1, s.shape[-1]) - t
                out += diff.pow(2).sum(1).reshape(self.h, self.w)
        return out


def patch_distance(src: torch.Tensor, tgt: torch.Tensor, nnf: torch.Tensor, size: int
                   ) -> torch.Tensor:
    """``(H, W)`` distances ``D(p, nnf(p))`` between ``size x size`` patches (see module doc)."""
    return _PatchCost(src, tgt, size)(nnf)


def exact_nnf(src: torch.Tensor, tgt: torch.Tensor, size: int, max_chunk_bytes: int = 256 << 20
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The true nearest-neighbour field by brute force: ``(nnf, distances)``.

    ``D(p, q) = sum_d |S(p+d)|^2 + |T(q+d)|^2 - 2 S(p+d).T(q+d)``, summed over the patch
    offsets as matrix products; cost ``H W H' W' C size^2``, so for small maps only.
    """
    src, tgt = _batch1(src).float(), _batch1(tgt).float()
    r = size // 2
    h, w = src.shape[-2:]
    th, tw = tgt.shape[-2:]
    pad = (r, r, r, r)
    sp = F.pad(src, pad, mode="replicate")[0] if r else src[0]
    tp = F.pad(tgt, pad, mode="replicate")[0] if r else tgt[0]
    n_src = h * w
    chunk = max(1, max_chunk_bytes // (4 * th * tw))
    best_d = torch.empty(n_src)
    best_i = torch.empty(n_src, dtype=torch.long)
    t_views = [tp[:, dy:dy + th, dx:dx + tw].reshape(tp.shape[0], -1)
               for dy in range(size) for dx in range(size)]
    t_sq = sum(t.pow(2).sum(0) for t in t_views)  # (th*tw,)
    s_views = [sp[:, dy:dy + h, dx:dx + w].reshape(sp.shape[0], -1)
               for dy in range(size) for dx in range(size)]
    s_sq = sum(s.pow(2).sum(0) for s in s_views)  # (h*w,)
    for start in range(0, n_src, chunk):
        sl = slice(start, start + chunk)
        dot = sum(s[:, sl].T @ t for s, t in zip(s_views, t_views))  # (B, th*tw)
        dist = s_sq[sl, None] + t_sq[None, :] - 2 * dot
        best_d[sl], best_i[sl] = dist.min(1)
    nnf = torch.stack([best_i // tw, best_i % tw], -1).reshape(h, w, 2)
    return nnf, best_d.clamp_min(0).reshape(h, w)


def patch_descriptors(src: torch.Tensor, tgt: torch.Tensor, size: int, dims: int | None = None,
                      samples: int = 4096, generator: torch.Generator | None = None,
                      bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-position descriptors whose squared distances are the patch distances.

    Returns ``(desc_src, desc_tgt, kept)`` as ``(m, H, W)`` maps with
    ``|desc_src(p) - desc_tgt(q)|^2 ~= D(p, q)`` (see module doc), so that PatchMatch on
    them needs only ``size=1``: one gather of ``m`` values per candidate instead of
    ``size^2`` gathers of ``C``. With ``dims=None`` the descriptor is the whole patch
    (``m = C size^2``, exact). Otherwise it is the patch projected onto its ``dims``
    principal components, estimated from ``samples`` random patches of both maps and
    applied as one convolution (in bfloat16 with ``bf16``); ``kept`` is the fraction of the
    patches' variance retained (1.0 when exact).
    """
    src, tgt = _batch1(src).float(), _batch1(tgt).float()
    c = src.shape[1]
    r = size // 2
    pad = (r, r, r, r)
    sp = F.pad(src, pad, mode="replicate") if r else src
    tp = F.pad(tgt, pad, mode="replicate") if r else tgt
    full = c * size * size
    if dims is None or dims >= full:
        ds = F.unfold(sp, size)[0].reshape(full, *src.shape[-2:])
        dt = F.unfold(tp, size)[0].reshape(full, *tgt.shape[-2:])
        return ds, dt, 1.0
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    rows = []
    for padded, (h, w) in ((sp, src.shape[-2:]), (tp, tgt.shape[-2:])):
        n = min(samples, h * w)
        ys = torch.randint(0, h, (n,), generator=g)
        xs = torch.randint(0, w, (n,), generator=g)
        last = padded[0].permute(1, 2, 0)  # (Hp, Wp, C): a position's channels are one row
        vals = torch.stack([last[ys + dy, xs + dx] for dy in range(size) for dx in range(size)],
                           2)  # (n, C, k*k): the channel-major layout of a conv kernel
        rows.append(vals.reshape(n, full))
    sample = torch.cat(rows)
    sample -= sample.mean(0, keepdim=True)
    _, sv, v = torch.svd_lowrank(sample, q=min(dims + 8, full), niter=2)
    v = v[:, :dims]
    kept = float(sv[:dims].pow(2).sum() / sample.pow(2).sum().clamp_min(1e-12))
    weight = v.T.reshape(dims, c, size, size).contiguous()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        ds, dt = F.conv2d(sp, weight)[0].float(), F.conv2d(tp, weight)[0].float()
    return ds, dt, min(1.0, kept)


def patchmatch(src: torch.Tensor, tgt: torch.Tensor, size: int = 3, iterations: int = 5,
               radius: int | None = None, init: torch.Tensor | None = None,
               generator: torch.Generator | None = None,
               report: Callable[[int, torch.Tensor], None] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """PatchMatch: an approximate nearest-neighbour field from ``src`` to ``tgt``.

    Starts from ``init`` (e.g. the upsampled field of a coarser layer) or a random field.
    Each iteration proposes, for every position at once, the matches of its four neighbours
    shifted by one (propagation) and random positions in windows of ``radius``, ``radius/2``,
    ..., 1 around its current match (random search; default radius: the whole target), and
    keeps a candidate only where it lowers the patch distance. ``report(iteration,
    distances)`` is called after each iteration. Returns ``(nnf, distances)``.
    """
    cost = _PatchCost(src, tgt, size)
    th, tw = cost.th, cost.tw
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    nnf = random_nnf((cost.h, cost.w), (th, tw), g) if init is None else _clamp_nnf(init, (th, tw))
    dist = cost(nnf)
    radius = max(th, tw) if radius is None else int(radius)

    def consider(candidate: torch.Tensor) -> None:
        nonlocal nnf, dist
        candidate = _clamp_nnf(candidate, (th, tw))
        d = cost(candidate)
        better = d < dist
        nnf = torch.where(better[..., None], candidate, nnf)
        dist = torch.where(better, d, dist)

    for it in range(1, iterations + 1):
        # propagation: the neighbour at p - delta matched q, so try q + delta at p
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            shifted = torch.roll(nnf, shifts=(dy, dx), dims=(0, 1))
            consider(shifted + torch.tensor([dy, dx]))
        # random search in shrinking windows around the current match
        r = radius
        while r >= 1:
            offset = torch.randint(-r, r + 1, (cost.h, cost.w, 2), generator=g)
            consider(nnf + offset)
            r //= 2
        if report is not None:
            report(it, dist)
    return nnf, dist


def upsample_nnf(nnf: torch.Tensor, src_hw: tuple[int, int], tgt_hw: tuple[int, int]
                 ) -> torch.Tensor:
    """A field at twice (or any multiple of) the resolution: ``q(p) = f q_c(p // f) + p mod f``.

    ``src_hw`` and ``tgt_hw`` are the new source and target sizes; the factor is taken per
    axis from the size ratios, and positions are clamped into the target.
    """
    ch, cw = nnf.shape[:2]
    h, w = src_hw
    fy, fx = max(1, round(h / ch)), max(1, round(w / cw))
    cy = (torch.arange(h) // fy).clamp(max=ch - 1)  # coarse cell of each fine row / column
    cx = (torch.arange(w) // fx).clamp(max=cw - 1)
    coarse = nnf[cy][:, cx]
    fine = torch.stack([coarse[..., 0] * fy + (torch.arange(h) - cy * fy)[:, None],
                        coarse[..., 1] * fx + (torch.arange(w) - cx * fx)[None, :]], -1)
    return _clamp_nnf(fine, tgt_hw)


def vote(nnf: torch.Tensor, tgt: torch.Tensor, size: int = 1) -> torch.Tensor:
    """Reconstruct a source-shaped map from target values by patch voting.

    Every source patch at ``p`` copies the target patch at ``nnf(p)``; each position
    averages the values that the patches covering it put there:

    .. math::
        R(x) = \\frac{1}{|N(x)|} \\sum_{d : x - d \\in \\Omega} T(\\mathrm{nnf}(x - d) + d)

    (offsets ``d`` within the patch, target positions clamped to the border). With
    ``size=1`` this is plain warping ``T(nnf(x))``. ``tgt`` is ``(C, H', W')`` or
    ``(1, C, H', W')``; the result has ``tgt``'s layout and the field's height and width.
    """
    batched = tgt.ndim == 4
    t = _batch1(tgt)[0]
    c, th, tw = t.shape
    h, w = nnf.shape[:2]
    flat = t.reshape(c, -1)
    out = torch.zeros(c, h, w, dtype=t.dtype)
    count = torch.zeros(1, h, w, dtype=t.dtype)
    r = size // 2
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            # positions x whose covering patch sits at x - d inside the source
            y0, y1 = max(0, dy), min(h, h + dy)
            x0, x1 = max(0, dx), min(w, w + dx)
            if y0 >= y1 or x0 >= x1:
                continue
            q = nnf[y0 - dy:y1 - dy, x0 - dx:x1 - dx]
            qy = (q[..., 0] + dy).clamp(0, th - 1)
            qx = (q[..., 1] + dx).clamp(0, tw - 1)
            vals = flat[:, (qy * tw + qx).reshape(-1)].reshape(c, y1 - y0, x1 - x0)
            out[:, y0:y1, x0:x1] += vals
            count[:, y0:y1, x0:x1] += 1
    out = out / count
    return out.unsqueeze(0) if batched else out
