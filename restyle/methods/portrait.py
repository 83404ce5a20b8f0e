"""Selim, Elgharib & Doyle (2016): painting style transfer for head portraits.

Plain Gatys transfer lets the style's statistics move strokes anywhere, and faces
deform; people notice the smallest irregularity in a face. Selim et al. add a
spatial constraint. The painting is warped onto the photo's face (a dense
correspondence from face landmarks, restyle/faces.py), and at the gain layers the
content target becomes the photo's features times a *gain map*:

    target_l = F_l[I] * G_l,   G_l = clamp((F_l[M] + eps) / (F_l[I] + eps), g_min, g_max)

with I the photo and M the warped painting. Where the painting is busier than the
photo (a brush stroke across a smooth cheek) the gain is above 1 and the output
must carry more energy *in that place*; the clamp (about [0.7, 5] in the paper)
keeps the photo's structure: a feature the photo does not have cannot be made,
and one it has is never removed. Gram-matrix style terms as in Gatys et al. add
the painting's texture; the optimization runs on restyle's core engine. Those global
statistics are gathered outside the face only (``face_style`` weighs the face's
share): inside it, the painting arrives locally, through the gain maps and colours,
so a stroke from elsewhere in the painting cannot land across an eye.

Colour and background follow the same idea of local statistics: by default the
photo first takes the *local* colour mean and contrast of the warped painting
(skin from the painted skin, the background from the painting's background at the
same place), which also starts the optimization. Where the photo's frame reaches
beyond the painting (a half-length photo, a head-only painting), the gains fall
back to 1 and the colours to the painting's overall statistics: plain Gatys
transfer there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .. import faces, imaging
from ..backbone import get_vgg
from ..errors import RestyleError
from ..losses import content_loss, total_variation
from ..masks import mask_at
from ..optimize import Objective, PyramidProblem, pyramid_sizes
from ..params import (param, parse_layer_weights, precision_param, seed_param, size_param,
                      weights_param)
from ..style_losses import get_style_loss, style_targets, style_term
from . import Inputs, Method, register
from .gatys import initial_image, level_iterations

log = logging.getLogger("restyle")


@dataclass
class PortraitParams:
    size: int = size_param(512)
    iterations: int = param(150, "optimizer iterations at the final size "
                            "(each coarser pyramid level gets twice as many)", min=0, max=100000)
    strength: float = param(0.5, "style strength from 0 (the photo) to 1 (style only), "
                            "as for --method gatys", min=0.0, max=1.0)
    content_weight: float = param(1.0, "extra multiplier on the gain-map content loss", min=0.0)
    style_weight: float = param(1.0, "extra multiplier on the style loss", min=0.0)
    tv_weight: float = param(0.0, "total-variation (smoothness) weight", min=0.0)
    gain_layers: str = param("relu2_1,relu3_1,relu4_1", "layers whose content target is the "
                             "photo's features times the gain map (the paper used conv3_1 and "
                             "conv4_1 on faces filling the frame; relu2_1 holds the eyes and "
                             "mouth of smaller faces)", metavar="LAYERS")
    style_layers: str = param("relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
                              "Gram style layers with optional weights", metavar="LAYERS")
    gain_min: float = param(0.7, "lower clamp of the gain maps", min=0.0, max=1.0)
    gain_max: float = param(5.0, "upper clamp of the gain maps", min=1.0, max=100.0)
    face_style: float = param(0.0, "weight of the face in the painting's global style "
                              "statistics (0: the face takes the painting's style only "
                              "locally, through the gain maps and colours; 1: as Gatys)",
                              min=0.0, max=1.0)
    style_scale: float = param(1.0, "size of the style's strokes relative to the output "
                               "(0.5 finer, 2 bolder)", min=0.05, max=8.0)
    color: str = param("local", "colours: 'local' takes the warped painting's local colours "
                       "(skin from painted skin), 'photo' keeps the photo's colours "
                       "(luminance-only transfer), 'none' leaves colour to the losses",
                       choices=("local", "photo", "none"))
    color_window: float = param(0.5, "size of the local colour windows, in inter-ocular "
                                "distances of the photo's face", min=0.05, max=10.0)
    init: str = param("content", "start image: content (the photo after the colour step), "
                      "noise, or the path of an image", metavar="content|noise|PATH",
                      kind="image")
    optimizer: str = param("lbfgs", "optimizer", choices=("lbfgs", "adam"))
    line_search: str = param("none", "L-BFGS line search", choices=("none", "strong_wolfe"))
    lr: float = param(0.0, "learning rate (0 = the optimizer's default)", min=0.0)
    min_size: int = param(256, "coarsest pyramid level's long side at least this (0 = no "
                          "pyramid)", min=0, max=imaging.MAX_SIDE)
    precision: str = precision_param()
    pooling: str = param("max", "VGG pooling", choices=("max", "avg"))
    weights: str = weights_param()
    seed: int = seed_param("random seed (noise init)")


def gain_map(photo: torch.Tensor, example: torch.Tensor, gain_min: float = 0.7,
             gain_max: float = 5.0, eps: float = 1e-4) -> torch.Tensor:
    """Selim et al. (2016), eq. 3: the clamped ratio of the example's features to the photo's.

    ``(example + eps) / (photo + eps)`` clamped to [``gain_min``, ``gain_max``], elementwise
    on feature maps of the same shape (ReLU outputs, so non-negative). ``eps`` also on
    top makes the gain exactly 1 where the two agree, dead units included.
    """
    if photo.shape != example.shape:
        raise ValueError(f"feature maps differ in shape: {tuple(photo.shape)} and "
                         f"{tuple(example.shape)}")
    g = (example.float() + eps) / (photo.float() + eps)
    return g.clamp(gain_min, gain_max)


def gain_target(photo: torch.Tensor, example: torch.Tensor, gain_min: float = 0.7,
                gain_max: float = 5.0, coverage: torch.Tensor | None = None) -> torch.Tensor:
    """The content target F[I] * G of one layer; ``coverage`` (1, 1, h, w at the layer's
    size, or any size) blends the gain towards 1 where the example is not valid."""
    g = gain_map(photo, example, gain_min, gain_max)
    if coverage is not None:
        c = mask_at(coverage.float(), g.shape[-2:])
        g = c * g + (1 - c)
    return photo.float() * g


@dataclass
class PortraitSetup:
    """What the optimization needs, at the final size: the photo after the colour step
    (content and start), the warped painting with its coverage, and the two faces."""

    content: torch.Tensor
    photo: torch.Tensor
    warped: torch.Tensor
    coverage: torch.Tensor
    style: torch.Tensor
    photo_face: faces.Face
    painting_face: faces.Face


def prepare(photo: torch.Tensor, painting: torch.Tensor, p: PortraitParams,
            photo_face: faces.Face | None = None,
            painting_face: faces.Face | None = None) -> PortraitSetup:
    """Find the faces (unless given), warp the painting onto the photo's face, and
    apply the colour step. ``photo`` is at the output size."""
    if photo_face is None:
        photo_face = faces.main_face(photo, "photo")
    if painting_face is None:
        painting_face = faces.main_face(painting, "painting")
    warped, cover = faces.warp_face(painting, painting_face, photo_face, tuple(photo.shape[-2:]))
    style = painting
    if p.color == "local":
        content = faces.local_color_transfer(photo, warped, p.color_window *
                                             photo_face.interocular, mask=cover)
    elif p.color == "photo":
        content = imaging.gray_rgb(photo)
        warped = imaging.match_luminance(warped, photo)
        style = imaging.match_luminance(painting, photo)
    else:
        content = photo
    return PortraitSetup(content, photo, warped, cover, style, photo_face, painting_face)


class PortraitProblem(PyramidProblem):
    """One portrait transfer set up for the engine: pyramid sizes, targets per level."""

    def __init__(self, setup: PortraitSetup, p: PortraitParams):
        self.s, self.p = setup, p
        self.loss = get_style_loss("gram", p.seed)
        self.gain_lw = parse_layer_weights(p.gain_layers, "--gain-layers")
        self.style_lw = parse_layer_weights(p.style_layers, "--style-layers")
        self.vgg = get_vgg(p.weights, pooling=p.pooling)
        self.vgg.check_layers(list(self.gain_lw) + list(self.style_lw))
        h, w = setup.content.shape[-2:]
        self.sizes = pyramid_sizes(h, w, p.min_size) if p.min_size else [(h, w)]
        self.iterations = level_iterations(p.iterations, len(self.sizes))
        # the face's samples weigh ``face_style`` in the output's style statistics, so the
        # global style term leaves the face to the local (gain-map) transfer
        self.style_mask = None
        if p.face_style < 1.0:
            face = faces.face_mask(setup.photo_face.landmarks, (h, w),
                                   0.25 * setup.photo_face.interocular)
            self.style_mask = 1.0 - (1.0 - p.face_style) * face
        s = p.strength
        self.cw = p.content_weight * (1.0 - s)
        self.sw = p.style_weight * self.loss.balance * (s / max(1.0 - s, 1e-3))

    @torch.no_grad()
    def targets(self, size: tuple[int, int], bf16: bool = False) -> dict[str, torch.Tensor]:
        """The gain-map content target of each gain layer at ``size`` (h, w)."""
        layers = list(self.gain_lw)
        c = imaging.resize_tensor(self.s.content, size)
        m = imaging.resize_tensor(self.s.warped, size)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fi, fm = self.vgg(c, layers), self.vgg(m, layers)
        return {n: gain_target(fi[n].float(), fm[n].float(), self.p.gain_min, self.p.gain_max,
                               self.s.coverage) for n in layers}

    def objective(self, size: tuple[int, int], bf16: bool) -> Objective:
        targets = self.targets(size, bf16)
        norm = sum(self.gain_lw.values()) or 1.0
        obj = Objective()
        for name, lw in self.gain_lw.items():
            obj = obj + Objective.term(
                "content", lambda f, _, n=name: content_loss(f[n], targets[n]), [name],
                self.cw * lw / norm)
        style = style_targets(self.loss, self.vgg, [self.s.style], [1.0], list(self.style_lw),
                              size[0] * size[1], self.p.style_scale, bf16)
        obj = obj + self.sw * style_term(self.loss, style, self.style_lw, self.style_mask)
        if self.p.tv_weight:
            obj = obj + Objective.term("tv", lambda _, img: total_variation(img), (),
                                       self.p.tv_weight)
        return obj

    def init(self, size: tuple[int, int]) -> torch.Tensor:
        return initial_image(self.p.init, self.s.content, size, self.p.seed)

    def finish(self, out: torch.Tensor) -> torch.Tensor:
        if self.p.color == "photo":
            out = imaging.combine_luminance(out, self.s.photo)
        return out


@register
class Portrait(Method):
    name = "portrait"
    family = "image-optimization"
    task = "transfer"
    summary = ("Selim et al. 2016: head portraits that keep the face; the painting is warped "
               "onto the photo's face (dlib landmarks) and transferred with gain maps; "
               "needs restyle[portrait]")
    Params = PortraitParams

    def run(self, inputs: Inputs, params: PortraitParams, callbacks=()) -> torch.Tensor:
        if inputs.content is None:
            raise RestyleError("the portrait method needs a content photo")
        if len(inputs.styles) != 1:
            raise RestyleError(f"the portrait method takes exactly one painting, not "
                               f"{len(inputs.styles)}")
        faces.require_dlib()
        faces.model_file()
        w, h = imaging.fit_size(*inputs.content.size, params.size)
        photo = imaging.to_tensor(imaging.resize(inputs.content, (w, h)))
        # faces are found in the images as given (detect_faces picks its own working
        # size), then scaled to the output
        photo_face = faces.main_face(inputs.content, "photo").scaled(
            w / inputs.content.size[0], h / inputs.content.size[1])
        painting = imaging.to_tensor(inputs.styles[0])
        painting_face = faces.main_face(inputs.styles[0], "painting")
        setup = prepare(photo, painting, params, photo_face, painting_face)
        return PortraitProblem(setup, params).solve(callbacks)
