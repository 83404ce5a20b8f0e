"""MRF / patch-based style transfer (Li & Wand 2016, "CNNMRF"), with semantic maps
(Champandard 2016, "Semantic style transfer and turning two-bit doodles into fine artworks").

Instead of global statistics (Gram matrices), the style is a bag of local feature patches:
every 3x3 patch of the output's ``relu3_1`` and ``relu4_1`` features is pulled towards the
style patch it resembles most (normalised cross-correlation; :func:`restyle.losses.mrf_loss`),
while ``relu4_2`` keeps the photo's content:

.. math::
    x^* = \\arg\\min_x \\; \\sum_{l} E_{mrf}(\\Phi_l(x), \\Phi_l(s))
          + \\alpha \\, E_c(\\Phi_{4,2}(x), \\Phi_{4,2}(c)) + \\beta \\, \\Upsilon_{TV}(x)
          + \\gamma \\, E_{colour}

The nearest patches are searched again every ``match_every`` iterations (the paper: at
every one). The style patches are sampled (stride 2, as in the paper) from the style image
and from copies of it rotated by +-7.5 degrees and scaled by 1.05^+-1, so that objects can
match in other poses and sizes. The output is synthesised coarse to fine (the engine's
pyramid); at each level the style is resized like the output. Because whole patches of the
style are reused, local structure (strokes, textures, photographic detail) survives better
than with Gram matrices; a style whose content is unlike the photo's gives patchy results.

**Colour.** The embedded VGG16 (tuned for edge detection) barely sees colour at relu3_1
and relu4_1: an image reconstructed from those features alone has the right shapes and
arbitrary colours. :math:`E_{colour}` (``color_weight``; not in the paper) therefore
compares the output's colours, averaged down to the first style layer's grid, with the
colours of the very style patches its features were matched to, by the same patch loss.

**Semantic maps.** With ``style_map`` and ``target_map`` (colour-coded regions, see
:mod:`restyle.semantic`), the label channels, averaged down to each layer and scaled by
``map_weight`` times the style features' RMS length, are appended to the features of
both sides before the patches are matched, so that sky patches come from the sky and
water patches from the water. Without a content image the target map alone describes
the picture: a doodle becomes a painting ("neural doodle", ``restyle doodle``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from .. import imaging
from ..backbone import get_vgg
from ..errors import RestyleError
from ..losses import content_loss, mrf_loss, total_variation
from ..optimize import Objective, PyramidProblem, pyramid_sizes
from ..params import (param, parse_layer_weights, precision_param, seed_param, size_param,
                      weights_param)
from ..patches import extract_patches, ncc_match, normalize_patches
from ..semantic import MapPair, pair_maps
from . import Inputs, Method, Takes, register

ROTATION_STEP = math.pi / 24  # 7.5 degrees, as in Li & Wand's code
SCALE_STEP = 1.05


@dataclass
class MRFParams:
    size: int = size_param(384, min=32, max=4096)
    iterations: int = param(100, "L-BFGS iterations at each pyramid level", min=0, max=100000)
    min_size: int = param(192, "coarsest pyramid level's long side at least this (each level "
                          "doubles; 0 = no pyramid). Much smaller levels lose the photo's "
                          "layout to the style's", min=0, max=4096)
    content_weight: float = param(1.0, "weight of the content (relu4_2) loss: higher keeps more "
                                  "of the photo", min=0.0)
    style_weight: float = param(1.0, "weight of the MRF (patch) loss", min=0.0)
    color_weight: float = param(5.0, "pull the colours, at the resolution of the first style "
                                "layer, towards those of the matched style patches (the "
                                "embedded VGG16 barely sees colour at relu3_1/relu4_1; 0 = off)",
                                min=0.0)
    tv_weight: float = param(3.0, "total-variation (smoothness) weight: deep patches do not "
                             "see pixel noise, this removes it (0 = off, 10+ smooth)", min=0.0)
    style_layers: str = param("relu3_1,relu4_1", "layers whose patches are matched, with "
                              "optional weights", metavar="LAYERS")
    content_layers: str = param("relu4_2", "content layers with optional weights",
                                metavar="LAYERS")
    patch_size: int = param(3, "side of the matched feature patches", min=1, max=7)
    style_stride: int = param(2, "sample the style's patches every N positions (1 = all; "
                              "slower, a little more detail)", min=1, max=8)
    stride: int = param(2, "match the output's patches every N positions (1: all, 4x the "
                        "search work; at most the patch size)", min=1, max=7)
    match_every: int = param(5, "search the nearest style patches every N iterations (1 as in "
                             "the paper: a search per iteration, hardly different)",
                             min=1, max=1000)
    rotations: int = param(1, "rotated copies of the style on each side (+-7.5 degrees "
                           "apart; 0 = none)", min=0, max=6)
    scales: int = param(1, "scaled copies of the style on each side (x1.05 apart; 0 = none)",
                        min=0, max=6)
    style_scale: float = param(1.0, "size of the style (and its patches) relative to the "
                               "output (0.5 finer, 2 bolder)", min=0.1, max=4.0)
    style_map: str = param("", "semantic map of the style image (colour-coded regions); "
                           "with --target-map", metavar="PATH", kind="map", on="style")
    target_map: str = param("", "semantic map of the output, painted with the style map's "
                            "colours; alone (no photo) it is a doodle to paint", metavar="PATH",
                            kind="map")
    map_weight: float = param(1.0, "how strongly the maps steer the matching (0 = ignore "
                              "them; 1 keeps regions apart)", min=0.0, max=100.0)
    init: str = param("content", "start image: content, noise, or the path of an image "
                      "(without a photo: noise)", metavar="content|noise|PATH", kind="image")
    precision: str = precision_param()
    pooling: str = param("max", "VGG pooling", choices=("max", "avg"))
    weights: str = weights_param()
    seed: int = seed_param("random seed (noise init)")


# ----------------------------------------------------------------------------- style copies

def rotate_crop(t: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate ``(N, C, H, W)`` by ``angle`` radians and crop the largest centred rectangle
    of the same aspect ratio that lies inside the rotated image (no empty corners)."""
    if angle == 0:
        return t
    h, w = t.shape[-2:]
    c, s = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[c, s * h / w, 0.0], [-s * w / h, c, 0.0]], dtype=t.dtype)
    grid = F.affine_grid(theta.unsqueeze(0).expand(t.shape[0], 2, 3), list(t.shape),
                         align_corners=False)
    rot = F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)
    a = abs(s)
    k = min(w / (w * c + h * a), h / (w * a + h * c))
    ch, cw = max(1, int(h * k)), max(1, int(w * k))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return rot[..., y0:y0 + ch, x0:x0 + cw]


def style_copies(style: torch.Tensor, guide: torch.Tensor | None, rotations: int, scales: int
                 ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """The style (and its label channels) rotated by ``k * 7.5`` degrees for
    ``|k| <= rotations`` and scaled by ``1.05**j`` for ``|j| <= scales``."""
    out = []
    for r in range(-rotations, rotations + 1):
        img = rotate_crop(style, r * ROTATION_STEP).clamp(0, 1)
        g = rotate_crop(guide, r * ROTATION_STEP) if guide is not None else None
        for j in range(-scales, scales + 1):
            f = SCALE_STEP ** j
            size = (max(8, round(img.shape[-2] * f)), max(8, round(img.shape[-1] * f)))
            out.append((imaging.resize_tensor(img, size),
                        F.interpolate(g, size=size, mode="bilinear", align_corners=False)
                        if g is not None else None))
    return out


@dataclass
class LayerBank:
    """The style's patches at one layer and pyramid level."""

    patches: torch.Tensor  # (L, C k^2): what the loss pulls towards
    match: torch.Tensor  # (L, (C + K) k^2) unit rows: searched (with scaled label channels)
    map_scale: float  # what a label channel is multiplied by (0 without maps)
    colours: torch.Tensor  # (L, 3 k^2): the style's colours at the same patches (area means)


def feature_rms(feat: torch.Tensor) -> float:
    """Root mean square length of a map's feature vectors: ``sqrt(mean_p |F(p)|^2)``."""
    return float(feat.float().pow(2).sum(1).mean().sqrt())


def style_banks(vgg, copies, layers: Sequence[str], patch_size: int, stride: int,
                map_weight: float, bf16: bool) -> dict[str, LayerBank]:
    """Patches of every style copy at ``layers`` (label channels appended for matching)."""
    feats = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for img, _ in copies:
            feats.append(vgg(img, list(layers)))
    dtype = torch.bfloat16 if bf16 else torch.float32
    banks = {}
    for layer in layers:
        centre = feats[len(feats) // 2][layer]  # the unrotated, unscaled copy
        scale = map_weight * feature_rms(centre) if copies[0][1] is not None else 0.0
        plist, mlist, clist = [], [], []
        for (img, guide), f in zip(copies, feats):
            fmap = f[layer]
            if min(fmap.shape[-2:]) < patch_size:
                continue
            p = extract_patches(fmap.float(), patch_size, stride).to(dtype)
            plist.append(p)
            colour = F.interpolate(img, size=fmap.shape[-2:], mode="area")
            clist.append(extract_patches(colour, patch_size, stride))
            if guide is not None:
                g = F.interpolate(guide, size=fmap.shape[-2:], mode="area") * scale
                mlist.append(torch.cat([p, extract_patches(g, patch_size, stride).to(dtype)], 1))
        if not plist:
            raise RestyleError(f"the style image is too small for {patch_size}x{patch_size} "
                               f"patches at {layer}; use a larger --size or --style-scale")
        patches = torch.cat(plist)
        match = normalize_patches(torch.cat(mlist) if mlist else patches)
        banks[layer] = LayerBank(patches, match, scale, torch.cat(clist))
    return banks


# ----------------------------------------------------------------------------- the problem

class MRFProblem(PyramidProblem):
    """One MRF synthesis set up for the engine: pyramid sizes, style patches per level."""

    def __init__(self, content: torch.Tensor | None, style: torch.Tensor, size: tuple[int, int],
                 p: MRFParams, maps: MapPair | None = None):
        self.p, self.content, self.style, self.maps = p, content, style, maps
        if p.stride > p.patch_size:
            raise RestyleError(f"--stride {p.stride} would leave gaps between "
                               f"{p.patch_size}x{p.patch_size} patches; use at most "
                               f"--patch-size")
        self.style_lw = parse_layer_weights(p.style_layers, "--style-layers")
        self.content_lw = parse_layer_weights(p.content_layers, "--content-layers")
        self.vgg = get_vgg(p.weights, pooling=p.pooling)
        self.vgg.check_layers(list(self.style_lw) + list(self.content_lw))
        h, w = size
        self.sizes = pyramid_sizes(h, w, p.min_size) if p.min_size else [(h, w)]
        self.iterations = [p.iterations] * len(self.sizes)
        coarse = self.sizes[0]
        # the deepest style layer (relu4_1: 1/8 of the pixels) must hold a patch at the
        # coarsest level
        for name in self.style_lw:
            block = int(name[4])
            factor = 2 ** (block if name.startswith("pool") else block - 1)
            if min(coarse) < p.patch_size * factor:
                raise RestyleError(
                    f"the coarsest pyramid level ({coarse[1]}x{coarse[0]}) is too small for "
                    f"{p.patch_size}x{p.patch_size} patches at {name}; use a larger --size "
                    "or --min-size")

    def _style_at(self, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The style (and its label channels) with its long side ``style_scale`` times the
        level's long side."""
        sh, sw = self.style.shape[-2:]
        k = self.p.style_scale * max(size) / max(sh, sw)
        ssize = (max(16, round(sh * k)), max(16, round(sw * k)))
        style = imaging.resize_tensor(self.style, ssize)
        guide = self.maps.channels("style", ssize) if self.maps is not None else None
        return style, guide

    def objective(self, size: tuple[int, int], bf16: bool) -> Objective:
        p = self.p
        style, guide = self._style_at(size)
        copies = style_copies(style, guide, p.rotations, p.scales)
        banks = style_banks(self.vgg, copies, list(self.style_lw), p.patch_size, p.style_stride,
                            p.map_weight, bf16)
        obj = Objective()
        norm = sum(self.style_lw.values()) or 1.0
        target_guide = self.maps.channels("target", size) if self.maps is not None else None
        for i, (name, lw) in enumerate(self.style_lw.items()):
            state: dict = {"calls": 0, "index": None}
            obj = obj + Objective.term("mrf", self._mrf_term(name, banks[name], target_guide,
                                                             state),
                                       [name], p.style_weight * lw / norm)
            if i == 0 and p.color_weight > 0 and p.style_weight > 0:
                obj = obj + Objective.term("color", self._colour_term(name, banks[name], state),
                                           [name], p.color_weight)
        if self.content is not None and p.content_weight > 0:
            c = imaging.resize_tensor(self.content, size)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                cf = self.vgg(c, list(self.content_lw))
            cf = {k: v.float() for k, v in cf.items()}
            cnorm = sum(self.content_lw.values()) or 1.0
            for name, lw in self.content_lw.items():
                obj = obj + Objective.term(
                    "content", lambda f, _, n=name: content_loss(f[n], cf[n]), [name],
                    p.content_weight * lw / cnorm)
        if p.tv_weight:
            obj = obj + Objective.term("tv", lambda _, img: total_variation(img), (), p.tv_weight)
        return obj

    def _mrf_term(self, layer: str, bank: LayerBank, target_guide: torch.Tensor | None,
                  state: dict):
        """The loss term of one layer: nearest style patches searched every ``match_every``
        evaluations (with the target's label channels appended), then :func:`mrf_loss`.
        ``state`` keeps the matches (shared with the colour term)."""
        p = self.p

        def term(features, _image):
            feat = features[layer]
            if state["index"] is None or state["calls"] % p.match_every == 0:
                query = feat.detach()
                if target_guide is not None:
                    g = F.interpolate(target_guide, size=feat.shape[-2:], mode="area")
                    query = torch.cat([query.float(), g * bank.map_scale], 1)
                state["index"], _ = ncc_match(query, bank.match, p.patch_size, p.stride,
                                              normalized=True)
            state["calls"] += 1
            return mrf_loss(feat, bank.patches, state["index"], p.patch_size, p.stride)

        return term

    def _colour_term(self, layer: str, bank: LayerBank, state: dict):
        """The output's colours, area-averaged to ``layer``'s grid, pulled towards the colours
        of the style patches that the layer's features were matched to (same patches, same
        :func:`mrf_loss`). Evaluated after the layer's MRF term, which sets the matches."""
        p = self.p

        def term(features, image):
            colour = F.interpolate(image, size=features[layer].shape[-2:], mode="area")
            return mrf_loss(colour, bank.colours, state["index"], p.patch_size, p.stride)

        return term

    def init(self, size: tuple[int, int]) -> torch.Tensor:
        p = self.p
        if p.init == "content" and self.content is not None:
            return imaging.resize_tensor(self.content, size)
        if p.init in ("noise", "content"):
            g = torch.Generator().manual_seed(p.seed)
            # the style's mean colour with faint noise to break the symmetry (as in Li & Wand's
            # code): strong noise would survive, since deep features barely see it
            mean = self.style.mean((2, 3), keepdim=True)
            return (mean + 0.02 * torch.randn(1, 3, *size, generator=g)).clamp(0, 1)
        img = imaging.to_tensor(imaging.load_image(p.init, "init image"))
        return imaging.resize_tensor(img, size)


def load_maps(p: MRFParams) -> MapPair | None:
    """The semantic maps named in the parameters, paired (or None without maps)."""
    if bool(p.style_map) != bool(p.target_map):
        missing = "--target-map" if p.style_map else "--style-map"
        raise RestyleError(f"semantic maps come in pairs: give {missing} too")
    if not p.style_map:
        return None
    return pair_maps(imaging.load_image(p.style_map, "style map"),
                     imaging.load_image(p.target_map, "target map"))


def check_map_paths(p: MRFParams) -> None:
    """Fail before any work when a named map file does not exist."""
    for flag, path in (("--style-map", p.style_map), ("--target-map", p.target_map)):
        if path and not os.path.exists(path):
            raise RestyleError(f"{flag}: file not found: {path}")


@register
class MRF(Method):
    name = "mrf"
    family = "image-optimization"
    task = "transfer"
    #: without a content photo, the target map alone is painted (a neural doodle)
    takes = Takes(content="optional")
    summary = ("Li & Wand 2016 (CNNMRF): match each feature patch to its nearest style patch; "
               "with --style-map/--target-map semantic transfer (Champandard 2016)")
    Params = MRFParams

    def run(self, inputs: Inputs, params: MRFParams, callbacks=()) -> torch.Tensor:
        if len(inputs.styles) != 1:
            raise RestyleError("mrf matches the patches of one style image; give exactly one "
                               "(patch methods do not blend styles)" if inputs.styles else
                               "mrf needs a style image")
        check_map_paths(params)
        maps = load_maps(params)
        style = imaging.to_tensor(inputs.styles[0])
        if inputs.content is not None:
            w, h = imaging.fit_size(*inputs.content.size, params.size)
            content = imaging.to_tensor(imaging.resize(inputs.content, (w, h)))
        elif maps is not None:
            th, tw = maps.target.shape
            w, h = imaging.fit_size(tw, th, params.size)
            content = None
        else:
            raise RestyleError("mrf needs a content image, or a --target-map to paint "
                               "(restyle doodle)")
        return MRFProblem(content, style, (h, w), params, maps).solve(callbacks)
