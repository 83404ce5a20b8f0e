"""What the one-pass methods (AdaIN, WCT, style-swap) share; not a method itself.

Each of them: loads the content at the output size and the styles at ``style_size``
(by default the output's long side, up to 1024 px, so strokes keep their size relative
to the picture, as Gatys's ``style_scale=1`` does),
optionally prepares colour preservation (as Gatys does: luminance-only transfer, or
the styles recoloured to the content's palette), encodes with the embedded VGG16
(bfloat16 autocast where the CPU supports it), transforms the features, blends with
the content's features by ``strength`` (the papers' alpha) and decodes with a trained
:class:`~restyle.nets.decoder.Decoder`.

Several styles are interpolated in feature space, as Huang & Belongie (2017, sec. 7.2)
and Li et al. (2017) do: ``t = sum_k w_k T(f_c, f_s_k)`` with the weights normalised
to sum to 1 (styles of weight 0 are skipped).

Spatial control: with ``masks`` (one image per style, white = that style) the weights
become maps, ``t = sum_k m_k T_k(f_c) + (1 - sum_k m_k) f_c``, each map averaged down
to the layer's resolution (soft edges stay soft), and each region's transform uses
the content statistics of that region (Huang & Belongie 2017, sec. 7.3); where no
mask covers the image, the photo's own features are decoded.

Stroke control (:mod:`restyle.stroke`): ``stroke_size`` runs the whole method at a
working size of ``1024 / stroke_size`` px and brings the result to the output size
(guided upsampling with the photo's detail), so strokes keep their size relative to the
picture at any output size; ``stroke_angle`` / ``stroke_field`` turn each style so its
strokes run in the requested direction, a field's directions being soft masks as above.

Large images run in overlapping tiles (:mod:`restyle.tiling`): a first pass over the
tiles accumulates the content statistics of the whole image, a second transforms and
decodes each tile with them and blends the tiles with partition-of-unity windows, so
the tiles agree and no seam shows. Only one tile's activations are in memory at a time.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .. import imaging, stroke
from ..errors import RestyleError
from ..masks import load_mask
from ..nets.decoder import Decoder
from ..params import param, precision_param, size_param
from ..tiling import Grid, Moments
from ..transforms import blend
from . import Inputs

#: Longest side processed in one piece when ``tile`` is 0 (automatic); larger images are
#: tiled in tiles of ``AUTO_TILE`` pixels.
AUTO_SINGLE = 1600
AUTO_TILE = 1024
#: Longest side a style image is encoded at when ``style_size`` is 0 (automatic).
STYLE_SIZE_CAP = 1024


@dataclass
class OnePassParams:
    """Parameters every one-pass method has."""

    size: int = size_param(512)
    strength: float = param(1.0, "style strength (the papers' alpha): 0 decodes the photo's "
                            "own features, 1 the fully transformed ones", min=0.0, max=1.0,
                            aliases=("alpha",))
    style_size: int = param(0, "long side the style image(s) are resized to before encoding "
                            f"(the size of the style's strokes); 0: the output's long side, at "
                            f"most {STYLE_SIZE_CAP} (strokes as large, relative to the picture, "
                            f"as in the painting)", min=0, max=imaging.MAX_SIDE)
    preserve_color: str = param("none", "keep the photo's colours: 'luminance' transfers only "
                                "luminance, 'histogram' recolours the style first",
                                choices=("none", "luminance", "histogram"))
    palette: str = param("style", "colours of the result: 'style' matches its colour mean and "
                         "covariance to the style's (mixed with the photo's by strength), "
                         "correcting the decoder's colour cast; 'decoder' keeps the decoded "
                         "colours", choices=("style", "decoder"))
    precision: str = precision_param()
    masks: str = param("", "one mask image per style (comma-separated): white paints that "
                       "style, grey blends, where no mask is white the photo is kept",
                       metavar="M1,M2", kind="mask", per_style=True)
    stroke_size: float = stroke.size_param("the method")
    stroke_angle: str = stroke.angle_param()
    stroke_field: str = stroke.field_param()
    stroke_bins: int = stroke.bins_param()
    stroke_stretch: float = stroke.stretch_param()
    tile: int = param(0, f"process in tiles of this many pixels (0: automatic, tiles of "
                      f"{AUTO_TILE} for images over {AUTO_SINGLE} px); tiles share the whole "
                      f"image's statistics, so they agree", min=0, max=imaging.MAX_SIDE)


@dataclass
class Prepared:
    """The images a one-pass method works on."""

    content: torch.Tensor  # (1, 3, H, W) what is encoded (grey for luminance transfer)
    photo: torch.Tensor  # (1, 3, H, W) the content photo at the output size
    styles: list[torch.Tensor]  # styles with a non-zero weight, resized (and recoloured)
    weights: list[float]  # their weights, summing to 1
    preserve_color: str
    masks: list[torch.Tensor] | None = None  # (1, 1, H, W) in [0, 1], one per style
    #: the photo at the output size when the transfer runs at a smaller working size
    #: (``stroke_size``): the result is brought back to it by guided upsampling
    full: torch.Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.photo.shape[-2:])

    def finish(self, out: torch.Tensor, p: OnePassParams) -> torch.Tensor:
        """The decoded image; for luminance transfer with the photo's chroma (YIQ); with
        ``palette='style'`` recoloured to the target palette (:meth:`match_palette`)."""
        if self.preserve_color == "luminance":
            out = imaging.combine_luminance(out, self.photo)
        else:
            out = out.clamp(0, 1)
            out = self.match_palette(out, p.strength) if p.palette == "style" else out
        return out if self.full is None else stroke.resample_to(out, self.full)

    def match_palette(self, out: torch.Tensor, alpha: float) -> torch.Tensor:
        """Give ``out`` the colour mean and covariance the transfer aims at: the styles'
        colour distributions mixed by their weights, then with the photo's by ``alpha``
        (the strength).
        With masks each style's region gets its own style's colours, what no mask covers
        the photo's."""
        photo = imaging.color_stats(self.photo)
        styles = [imaging.color_stats(s) for s in self.styles]
        if self.masks is None:
            target = imaging.mix_color_stats(
                [imaging.mix_color_stats(styles, self.weights), photo], [alpha, 1 - alpha])
            return imaging.apply_color_stats(out, *target)
        regions = [(mask, imaging.mix_color_stats([stats, photo], [alpha, 1 - alpha]))
                   for stats, mask in zip(styles, self.masks)]
        regions.append(((1 - sum(self.masks)).clamp_min(0), photo))  # what stays the photo
        result = torch.zeros_like(out)
        for mask, target in regions:
            if float(mask.max()) > 0:
                result += mask * imaging.apply_color_stats(out, *target, weight=mask)
        return result.clamp(0, 1)


def prepare(inputs: Inputs, p: OnePassParams, method: str) -> Prepared:
    if inputs.content is None:
        raise RestyleError(f"{method} needs a content image")
    if not inputs.styles:
        raise RestyleError(f"{method} needs at least one style image")
    stroke.check_controls(p.stroke_angle, p.stroke_field)
    out_w, out_h = imaging.fit_size(*inputs.content.size, p.size)
    full = None
    if p.stroke_size:  # run at a working size: strokes as this method paints at 1024 / S px
        work = stroke.working_side(p.stroke_size, max(out_w, out_h))
        if work != max(out_w, out_h):
            full = imaging.to_tensor(imaging.resize(inputs.content, (out_w, out_h)))
            out_w, out_h = imaging.fit_size(out_w, out_h, work)
    style_side = p.style_size or min(max(out_w, out_h), STYLE_SIZE_CAP)
    photo = imaging.to_tensor(imaging.resize(inputs.content, (out_w, out_h)))
    total = sum(inputs.style_weights)
    mask_files = [m.strip() for m in p.masks.split(",") if m.strip()] if p.masks else []
    if mask_files and len(mask_files) != len(inputs.styles):
        raise RestyleError(f"--masks needs one mask per style: {len(mask_files)} masks for "
                           f"{len(inputs.styles)} styles")
    styles, weights, masks = [], [], []
    h, w_ = photo.shape[-2:]
    for k, (img, w) in enumerate(zip(inputs.styles, inputs.style_weights)):
        if w > 0 or mask_files:
            styles.append(imaging.to_tensor(imaging.resize(img, imaging.fit_size(*img.size,
                                                                                 style_side))))
            weights.append(w / total)
            if mask_files:
                masks.append(load_mask(mask_files[k], "mask", (h, w_), empty_ok=True))
    plan = stroke.orient(p.stroke_angle, p.stroke_field, p.stroke_bins, photo, styles)
    if plan is not None:
        # each style turned to each direction; a field's directions are soft regions
        # (masks), weighted by the style's weight or its own mask
        oriented, o_weights, o_masks = [], [], []
        for k, rows in enumerate(plan):
            for rot, target, region in rows:
                oriented.append(stroke.turn(styles[k], rot, target, p.stroke_stretch)[0])
                o_weights.append(weights[k])
                if region is not None or masks:
                    base = masks[k] if masks else torch.full((1, 1, h, w_), weights[k])
                    o_masks.append(base if region is None else base * region)
        styles, weights, masks = oriented, o_weights, o_masks
    content = photo
    if p.preserve_color == "luminance":
        styles = [imaging.match_luminance(s, photo) for s in styles]
        content = imaging.gray_rgb(photo)
    elif p.preserve_color == "histogram":
        styles = [imaging.color_transfer(s, photo) for s in styles]
    if masks:
        cover = torch.stack(masks).sum(0)
        if float(cover.max()) <= 0:
            raise RestyleError("every mask is black: nothing would be stylised")
        scale = torch.where(cover > 1, 1 / cover.clamp_min(1e-8), torch.ones_like(cover))
        masks = [m * scale for m in masks]  # overlapping masks share, never exceed 1
    return Prepared(content, photo, styles, weights, p.preserve_color, masks or None, full)


def auto_tile(p: OnePassParams, size: tuple[int, int]) -> int:
    """The tile side for an output of ``size``: ``p.tile``, or automatic."""
    if p.tile:
        return p.tile
    return max(size) if max(size) <= AUTO_SINGLE else AUTO_TILE


#: A style's transform at one level: (content features, content statistics) -> features.
Transform = Callable[[torch.Tensor, Moments | None], torch.Tensor]


def _down(region: torch.Tensor, scale: int, size: Sequence[int]) -> torch.Tensor:
    """A (1, 1, h, w) map averaged over ``scale`` cells and cut/padded to ``size``."""
    r = F.avg_pool2d(region, scale, scale) if scale > 1 else region
    r = r[..., :size[0], :size[1]]
    if tuple(r.shape[-2:]) != tuple(size):
        r = F.pad(r, (0, size[1] - r.shape[-1], 0, size[0] - r.shape[-2]))
    return r


def stylize_level(vgg, decoder: Decoder, image: torch.Tensor, level: str,
                  transforms: Sequence[Transform], weights: Sequence[float],
                  masks: Sequence[torch.Tensor] | None, strength: float, bf16: bool, tile: int,
                  needs_stats: bool = True, full_stats: bool = True) -> torch.Tensor:
    """Encode ``image`` to ``level``, transform, blend by ``strength`` and decode, tile by tile.

    ``transforms[k](features, stats)`` is style k's transform, given the content
    statistics of its region (of the whole image without masks): the image's
    features are combined as ``sum_k w_k T_k`` (no masks) or ``sum_k m_k T_k +
    (1 - sum_k m_k) f`` (masks). ``needs_stats=False`` skips the statistics pass
    (transforms that only look at local patches, like style-swap); ``full_stats=False``
    gathers channel variances but no covariances (AdaIN).
    """
    h, w = image.shape[-2:]
    scale = 2 ** (int(level[4]) - 1)
    grid = Grid(h, w, tile, overlap=min(64, tile // 4), margin=64 if tile < max(h, w) else 0)
    single = len(grid) == 1
    cached: torch.Tensor | None = None

    def features(t) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return vgg(t.crop(image), [level])[level].float()

    stats: list[Moments | None] = [None] * len(transforms)
    if needs_stats:
        stats = ([Moments(full_stats) for _ in transforms] if masks
                 else [Moments(full_stats)] * len(transforms))
        for t in grid:
            fc = features(t)
            cached = fc if single else None
            win = t.weight(scale, fc.shape[-2:])
            if masks:
                for k, m in enumerate(masks):
                    stats[k].add(fc, win * _down(t.crop(m), scale, fc.shape[-2:]))
            else:
                stats[0].add(fc, win)
    out = torch.zeros(1, 3, h, w)
    for t in grid:
        fc = cached if cached is not None else features(t)
        if masks:
            region = [_down(t.crop(m), scale, fc.shape[-2:]) for m in masks]
            keep = (1 - sum(region)).clamp_min(0)
            mixed = keep * fc + sum(r * fn(fc, st) for r, fn, st in zip(region, transforms, stats))
        else:
            mixed = sum(wk * fn(fc, st) for wk, fn, st in zip(weights, transforms, stats))
        target = blend(fc, mixed, strength)
        box = (t.cy1 - t.cy0, t.cx1 - t.cx0)
        if single:
            return decode(decoder, target, box, bf16)
        out[..., t.cy0:t.cy1, t.cx0:t.cx1] += decode(decoder, target, box, bf16) * t.weight()
    return out


_STYLE_CACHE: "OrderedDict[tuple, dict[str, torch.Tensor]]" = OrderedDict()
_STYLE_CACHE_SIZE = 16


def encode_style(vgg, image: torch.Tensor, layers: list[str], bf16: bool
                 ) -> dict[str, torch.Tensor]:
    """:func:`encode` for style images, remembered for the last few styles (by content hash),
    so stylising many photos (a batch, a video, the studio) encodes each style once."""
    digest = hashlib.sha1(memoryview(image.detach().float().contiguous().numpy())).hexdigest()
    key = (digest, tuple(image.shape), tuple(layers), bf16, id(vgg))
    hit = _STYLE_CACHE.get(key)
    if hit is None:
        hit = encode(vgg, image, layers, bf16)
        _STYLE_CACHE[key] = hit
        if len(_STYLE_CACHE) > _STYLE_CACHE_SIZE:
            _STYLE_CACHE.popitem(last=False)
    else:
        _STYLE_CACHE.move_to_end(key)
    return hit


@torch.no_grad()
def encode(vgg, image: torch.Tensor, layers: list[str], bf16: bool) -> dict[str, torch.Tensor]:
    """VGG features of ``image`` at ``layers``, as float32 (computed under bf16 autocast)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = vgg(image, layers)
    return {k: v.float() for k, v in feats.items()}


@torch.no_grad()
def decode(decoder: Decoder, feat: torch.Tensor, size: tuple[int, int], bf16: bool
           ) -> torch.Tensor:
    """The decoder's image of ``feat`` at exactly ``size`` (h, w), float32 in [0, 1]."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return decoder.decode(feat, size)
