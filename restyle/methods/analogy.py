"""Deep image analogy (Liao, Yao, Yuan, Hua & Kang 2017, "Visual attribute transfer through
deep image analogy").

Given A (e.g. a photo) and B' (e.g. a painting), it builds the two missing images of the
analogy A : A' :: B : B': A' has A's structure drawn with B''s appearance, and B has B''s
structure with A's appearance. Deep features are taken to be nearly domain-invariant at the
top of VGG, so the search starts there with ``F_A'^5 = F_A^5`` and ``F_B^5 = F_B'^5`` and
goes coarse to fine over ``relu5_1 .. relu1_1``. At each layer L:

1. **Bidirectional NNF search.** PatchMatch finds ``phi_a->b`` (and ``phi_b->a``)
   minimising, over patches of channel-normalised features,

   .. math::
       \\sum_{x \\in N(p), y \\in N(q)} \\lVert \\bar F_A(x) - \\bar F_B(y) \\rVert^2
       + \\lVert \\bar F_{A'}(x) - \\bar F_{B'}(y) \\rVert^2

   starting from the upsampled field of the layer above and searching within a small
   radius (6, 6, 4, 4 positions at relu4_1 .. relu1_1); at relu5_1 the field is found
   exactly by brute force. Large layers match PCA-reduced patch descriptors
   (:func:`restyle.patches.patch_descriptors`).
2. **Feature reconstruction.** B''s features warped by ``phi_a->b`` (patch voting) are
   carried to layer L-1 by "deconvolution": L-BFGS finds ``R`` at L-1 whose image under the
   network's layers L-1 -> L is the warped map. A's own features are blended in where
   they respond strongly,

   .. math::
       F_{A'}^{L-1} = F_A^{L-1} \\circ W + R_{B'}^{L-1} \\circ (1 - W), \\quad
       W = \\alpha_{L-1} \\, \\sigma\\big(\\kappa (|F_A^{L-1}|^2 - \\tau)\\big)

   (``|F|^2`` normalised to [0, 1], ``kappa = 300``, ``tau = 0.05``, ``alpha`` = 0.8,
   0.7, 0.6, 0.1 for relu4_1 .. relu1_1): higher alphas keep more of A's structure.
   ``F_B^{L-1}`` is built the same way from B' and the warped A.

Finally A' is B''s pixels gathered by ``phi_a->b`` at full resolution (3x3 patch voting)
and B is A's pixels gathered by ``phi_b->a``. The paper's optional edge-aware refinement
for photo-to-photo transfer (WLS filtering) is not included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .. import imaging
from ..backbone import get_vgg
from ..errors import RestyleError
from ..optimize import Progress, Stop, resolve_precision
from ..params import (param, parse_floats, precision_param, seed_param, size_param,
                      weights_param)
from ..patches import (exact_nnf, normalize_features, patch_descriptors, patchmatch,
                       upsample_nnf, vote)
from . import Inputs, Method, register

LAYERS = ("relu5_1", "relu4_1", "relu3_1", "relu2_1", "relu1_1")
PATCH_SIZE = {"relu5_1": 3, "relu4_1": 3, "relu3_1": 3, "relu2_1": 5, "relu1_1": 5}
SEARCH_RADIUS = {"relu4_1": 6, "relu3_1": 6, "relu2_1": 4, "relu1_1": 4}
KAPPA, TAU = 300.0, 0.05
FINAL_PATCH = 3
#: above this many values gathered per candidate (H W C k^2), match PCA descriptors instead
EXACT_BUDGET = 16_000_000


@dataclass
class AnalogyParams:
    size: int = size_param(384, min=48, max=2048,
                           help="long side of both images while matching (a multiple of 16 "
                                "is used); the outputs keep the inputs' aspect ratios")
    alphas: str = param("0.8,0.7,0.6,0.1", "how much of A's own features A' keeps at relu4_1, "
                        "relu3_1, relu2_1, relu1_1 (higher: more of A's structure, less of "
                        "B''s shapes)", metavar="A4,A3,A2,A1")
    iterations: int = param(6, "PatchMatch iterations per layer", min=1, max=100)
    deconv_iterations: int = param(20, "L-BFGS iterations of each feature reconstruction "
                                   "(deconvolution)", min=0, max=5000)
    descriptor_dims: int = param(64, "PCA dimensions of the patch descriptors on the large "
                                 "layers (0 = exact patches everywhere: slow)", min=0, max=4096)
    precision: str = precision_param()
    weights: str = weights_param()
    seed: int = seed_param("random seed of PatchMatch")


def work_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(h, w) with the long side about ``long_side`` and both sides multiples of 16 (>= 48),
    so that every VGG layer is exactly half the one before."""
    w, h = imaging.fit_size(width, height, long_side)
    return max(48, round(h / 16) * 16), max(48, round(w / 16) * 16)


def response_weights(feat: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha * sigmoid(kappa (n - tau))``, ``n`` the squared feature length scaled to [0, 1]."""
    sq = feat.float().pow(2).sum(1, keepdim=True)
    lo, hi = sq.min(), sq.max()
    n = (sq - lo) / (hi - lo).clamp_min(1e-12)
    return alpha * torch.sigmoid(KAPPA * (n - TAU))


def deconvolve(vgg, lower: str, upper: str, target: torch.Tensor, init: torch.Tensor,
               iterations: int, bf16: bool) -> torch.Tensor:
    """Features ``R`` at ``lower`` whose image at ``upper`` is ``target`` (the paper's
    deconvolution): L-BFGS on ``|f(R) - target|^2 / |target|^2`` from ``init``. Returns
    ``R`` clamped at 0 (``lower`` is a ReLU layer)."""
    shape = init.shape
    # optimised as one flat vector: L-BFGS needs contiguous gradients, and the network's
    # channels-last convolutions would hand back strided ones
    flat = init.detach().float().reshape(-1).clone().requires_grad_(True)
    if iterations <= 0:
        return init.detach().float().clamp_min(0)
    target = target.detach().float()
    denom = target.pow(2).sum().clamp_min(1e-12)
    opt = torch.optim.LBFGS([flat], lr=1.0, max_iter=iterations,
                            max_eval=iterations * 5 // 4, history_size=20, tolerance_grad=0.0,
                            tolerance_change=0.0, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = vgg(flat.view(shape), [upper], start=lower)[upper]
        loss = (out.float() - target).pow(2).sum() / denom
        loss.backward()
        return loss

    opt.step(closure)
    return flat.detach().view(shape).clamp_min(0)


@dataclass
class AnalogyResult:
    a_prime: torch.Tensor  # (1, 3, h, w): A's structure, B''s appearance
    b: torch.Tensor  # (1, 3, h', w'): B''s structure, A's appearance
    nnf_ab: torch.Tensor  # (h, w, 2) pixel field A -> B'
    nnf_ba: torch.Tensor  # (h', w', 2) pixel field B' -> A


def _fields(src: torch.Tensor, tgt: torch.Tensor, layer: str, init_ab: torch.Tensor | None,
            init_ba: torch.Tensor | None, p: AnalogyParams, g: torch.Generator, bf16: bool):
    """Both fields at one layer: exact at the top, PatchMatch below (on PCA descriptors,
    computed once for both directions, where exact patches would be too slow)."""
    k = PATCH_SIZE[layer]
    c, h, w = src.shape[-3:]
    if init_ab is None or init_ba is None:
        return exact_nnf(src, tgt, k), exact_nnf(tgt, src, k)
    radius = SEARCH_RADIUS[layer]
    if p.descriptor_dims and h * w * c * k * k > EXACT_BUDGET:
        src, tgt, _ = patch_descriptors(src, tgt, k, p.descriptor_dims, generator=g, bf16=bf16)
        k = 1
    return (patchmatch(src, tgt, k, p.iterations, radius, init_ab, g),
            patchmatch(tgt, src, k, p.iterations, radius, init_ba, g))


def deep_image_analogy(a: torch.Tensor, bp: torch.Tensor, p: AnalogyParams,
                       callbacks: Sequence[Callable[[Progress], None]] = ()) -> AnalogyResult:
    """A' and B from A and B' (tensors ``(1, 3, H, W)`` at their working sizes, multiples of
    16). Callbacks get a :class:`Progress` after each layer (image: a preview of A');
    raising :class:`Stop` finishes from the fields found so far."""
    alphas = parse_floats(p.alphas, "--alphas")
    if len(alphas) != 4 or any(x > 1 for x in alphas):
        raise RestyleError("--alphas needs four numbers between 0 and 1 (relu4_1, relu3_1, "
                           f"relu2_1, relu1_1), not {p.alphas!r}")
    alpha = dict(zip(LAYERS[1:], alphas))
    bf16 = resolve_precision(p.precision)
    vgg = get_vgg(p.weights)
    g = torch.Generator().manual_seed(p.seed)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        fa = {k: v.float() for k, v in vgg(a, list(LAYERS)).items()}
        fbp = {k: v.float() for k, v in vgg(bp, list(LAYERS)).items()}
    fa1 = {LAYERS[0]: fa[LAYERS[0]]}  # A' shares A's top features, B shares B''s
    fb = {LAYERS[0]: fbp[LAYERS[0]]}
    ha, wa = a.shape[-2:]
    hb, wb = bp.shape[-2:]
    nnf_ab = nnf_ba = None
    start = time.perf_counter()
    for i, layer in enumerate(LAYERS):
        src = torch.cat([normalize_features(fa[layer]), normalize_features(fa1[layer])], 1)
        tgt = torch.cat([normalize_features(fb[layer]), normalize_features(fbp[layer])], 1)
        sa, sb = tuple(src.shape[-2:]), tuple(tgt.shape[-2:])
        init_ab = upsample_nnf(nnf_ab, sa, sb) if nnf_ab is not None else None
        init_ba = upsample_nnf(nnf_ba, sb, sa) if nnf_ba is not None else None
        (nnf_ab, d_ab), (nnf_ba, d_ba) = _fields(src, tgt, layer, init_ab, init_ba, p, g, bf16)
        if callbacks:
            k = PATCH_SIZE[layer]
            patch_area = k * k
            preview = vote(upsample_nnf(nnf_ab, (ha, wa), (hb, wb)), bp, 1)
            prog = Progress(i, len(LAYERS), 1, 1, i + 1, len(LAYERS), sa,
                            float(d_ab.mean()) / patch_area,
                            {"a->b": float(d_ab.mean()) / patch_area,
                             "b->a": float(d_ba.mean()) / patch_area},
                            preview, time.perf_counter() - start)
            try:
                for cb in callbacks:
                    cb(prog)
            except Stop:
                break
        if i + 1 == len(LAYERS):
            break
        lower = LAYERS[i + 1]
        k = PATCH_SIZE[layer]
        # A' at the layer below: B' warped by phi_a->b, carried down, blended with A
        target = vote(nnf_ab, fbp[layer], k)
        init = vote(upsample_nnf(nnf_ab, tuple(fa[lower].shape[-2:]), tuple(fbp[lower].shape[-2:])),
                    fbp[lower], 1)
        r = deconvolve(vgg, lower, layer, target, init, p.deconv_iterations, bf16)
        w = response_weights(fa[lower], alpha[lower])
        fa1[lower] = fa[lower] * w + r * (1 - w)
        # B at the layer below: A warped by phi_b->a, carried down, blended with B'
        target = vote(nnf_ba, fa[layer], k)
        init = vote(upsample_nnf(nnf_ba, tuple(fbp[lower].shape[-2:]), tuple(fa[lower].shape[-2:])),
                    fa[lower], 1)
        r = deconvolve(vgg, lower, layer, target, init, p.deconv_iterations, bf16)
        w = response_weights(fbp[lower], alpha[lower])
        fb[lower] = fbp[lower] * w + r * (1 - w)
    px_ab = upsample_nnf(nnf_ab, (ha, wa), (hb, wb))
    px_ba = upsample_nnf(nnf_ba, (hb, wb), (ha, wa))
    return AnalogyResult(vote(px_ab, bp, FINAL_PATCH).clamp(0, 1),
                         vote(px_ba, a, FINAL_PATCH).clamp(0, 1), px_ab, px_ba)


def analogy_images(a, b_prime, p: AnalogyParams,
                   callbacks: Sequence[Callable[[Progress], None]] = ()
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """A' and B for PIL images A and B', each at its input's aspect ratio with the long side
    ``p.size``."""
    out = []
    tensors = []
    for img in (a, b_prime):
        h, w = work_size(*img.size, p.size)
        tensors.append(imaging.to_tensor(imaging.resize(img, (w, h))))
        fw, fh = imaging.fit_size(*img.size, p.size)
        out.append((fh, fw))
    res = deep_image_analogy(tensors[0], tensors[1], p, callbacks)
    return (imaging.resize_tensor(res.a_prime, out[0]), imaging.resize_tensor(res.b, out[1]))


@register
class Analogy(Method):
    name = "analogy"
    family = "image-optimization"
    task = "transfer"
    summary = ("Liao et al. 2017, deep image analogy: bidirectional PatchMatch on VGG layers "
               "builds A' (content A, appearance of style B'); restyle analogy also gives B")
    Params = AnalogyParams

    def run(self, inputs: Inputs, params: AnalogyParams, callbacks=()) -> torch.Tensor:
        if inputs.content is None:
            raise RestyleError("analogy needs a content image (A)")
        if len(inputs.styles) != 1:
            raise RestyleError("analogy takes exactly one style image (B')")
        return analogy_images(inputs.content, inputs.styles[0], params, callbacks)[0]
