"""Anytime stylization: a one-pass result at once, refined by optimization within a budget.

The run starts from a one-pass estimate for the style: the distilled AdaIN
(``adain-lite``), which takes any style image and keeps the photo's layout, so that the
refinement reaches Gatys's composition; for budgets under :data:`NETWORK_BELOW` seconds,
too short to refine much, the trained style network when the style painting is one of its
styles (matched by file name, as ``restyle bench`` does). That image
is then the starting point of the Gatys optimization (restyle.methods.gatys: the same
objective, style statistic, masks, colour preservation) at the final size, which runs
until ``budget`` seconds have passed since the start of the call, or the loss stops
falling, or ``iterations`` are done. The result at any moment is a finished picture:
callbacks get the start image first (step 0) and then the image after every
iteration, so the studio and ``--snapshot-every`` show the one-pass result at once and
the refinement as it goes. ``budget=0`` returns the one-pass start.

The start is the one-pass method's output at the strength that lands nearest the
optimum of the objective (:func:`start_strength`); the refinement moves it to the
balance of content and style that ``strength`` sets, as Gatys's does, with three times
Gatys's content weight: coming from the stylised side rather than from the photo, at
Gatys's weight it ends more stylised than Gatys's run (docs/anytime.md). Its iterates
stay in [0, 1] and the lowest-loss one is the result (``AnytimeProblem.bounded``).

With ``min_size`` the refinement is a pyramid inside the budget: the start is reduced to
the coarsest level, the coarser levels share ``coarse`` of the time left after the start
(:func:`level_limits`) and the final size gets the rest. Measured at 60 s budgets
(docs/anytime.md) it ends with a higher content distance than refining at the final size
alone, so it is off by default; from the photo (``init="content"``) it recomposes the
picture as Gatys's pyramid does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import imaging
from ..errors import RestyleError
from ..optimize import Progress
from ..params import make, param
from . import Inputs, Method, get_method, register
from .gatys import GatysParams, GatysProblem, auto_tuned, finished, prepare

#: The one-pass methods a run may start from (``init``), besides Gatys's own starts.
ONE_PASS_STARTS = ("adain-lite", "adain", "network")


@dataclass
class AnytimeParams(GatysParams):
    budget: float = param(20.0, "seconds for the whole transfer: the one-pass start, then "
                          "optimization until this much time has passed (0: the one-pass "
                          "start only)", min=0.0, max=86400.0, metavar="SECONDS")
    init: str = param("auto", "start image: auto (budgets under 5 s: the trained network when "
                      "the style painting is one of its styles; else adain-lite), adain-lite, "
                      "adain, network, content, noise, or the path of an image",
                      metavar="auto|adain-lite|adain|network|content|noise|PATH", kind="image")
    content_weight: float = param(3.0, "extra multiplier on the content loss (anytime: 3, "
                                  "gatys: 1; anytime refines a stylised start, not the photo, "
                                  "and at 1 it ends more stylised than Gatys's run)", min=0.0)
    iterations: int = param(1000, "at most this many optimizer iterations (the budget or a "
                            "plateau usually ends the run first)", min=0, max=100000)
    min_size: int = param(0, "0: refine at the final size only; else a pyramid from this long "
                          "side (the start is resized to its first level)", min=0,
                          max=imaging.MAX_SIDE)
    coarse: float = param(0.3, "with a pyramid (--min-size): the share of the time left after "
                          "the start that the coarser levels get (the rest refines at the "
                          "final size)", min=0.0, max=1.0, metavar="FRACTION")
    plateau: float = param(0.001, f"end early when the loss fell by less than this fraction "
                           f"over the last 20 iterations (0: use the whole budget)",
                           min=0.0, max=1.0)
    model: str = param("", "style network for init network/auto: a name from `restyle models` "
                       "or a .safetensors path (default: painters)", metavar="NAME|PATH",
                       kind="path")


def start_strength(strength: float) -> float:
    """The one-pass strength the refinement starts from, for the objective's ``strength``.

    Gatys's strength 0.5 is the classic balance, whose optimum is about as stylised as a
    one-pass method at full strength; lower strengths move the start towards the photo in
    proportion."""
    return min(1.0, 2.0 * strength)


def level_limits(levels: int, coarse: float, deadline: float,
                 now: float | None = None) -> list[float | None]:
    """When each pyramid level ends (:func:`time.perf_counter` instants): the coarser levels
    share ``coarse`` of the time left between ``now`` (default: the present instant) and
    ``deadline`` equally, the final size gets the rest (None: until the deadline)."""
    now = time.perf_counter() if now is None else now
    left = max(0.0, deadline - now)
    below = levels - 1
    return [now + left * coarse * (k + 1) / below for k in range(below)] + [None]


def network_styles(inputs: Inputs, model: str) -> list[str] | None:
    """The styles of the trained network ``model`` that the style images are (by file
    name), or None when one of them is not in it (or no network is installed)."""
    from ..methods.network import default_model
    from ..nets.stylenet import get_stylenet
    if len(inputs.style_names) != len(inputs.styles) or not all(inputs.style_names):
        return None
    try:
        styles = get_stylenet(model or default_model()).styles
    except RestyleError:
        return None
    names = [Path(n).stem for n in inputs.style_names]
    return names if all(n in styles for n in names) else None


#: Budgets (seconds) below which ``init=auto`` starts from the trained network where it
#: knows the painting: too short for the refinement to change the start much, and the
#: network's one-pass picture is the closer one to the painting. From this budget on the
#: start is adain-lite, whose layout (the photo's, lightly restyled) the refinement takes to
#: Gatys's composition, where from the network's it keeps the network's (docs/anytime.md).
NETWORK_BELOW = 5.0


def choose_start(inputs: Inputs, p: AnytimeParams) -> str:
    """The one-pass method a run starts from, or "" for Gatys's own init (content, noise,
    an image file)."""
    if p.init == "auto":
        spatial = p.masks or p.style_masks or p.object_mask or p.box
        if (p.budget < NETWORK_BELOW and not spatial
                and network_styles(inputs, p.model) is not None):
            return "network"
        return "adain-lite"
    return p.init if p.init in ONE_PASS_STARTS else ""


def one_pass_start(method: str, inputs: Inputs, p: AnytimeParams) -> torch.Tensor:
    """The output of the one-pass ``method`` at the final size, colours and masks as asked."""
    common = {"size": p.size, "strength": start_strength(p.strength),
              "precision": p.precision, "preserve_color": p.preserve_color}
    m = get_method(method)
    if method == "network":
        names = network_styles(inputs, p.model)
        if names is None:
            raise RestyleError("init network: the style network has no style named like the "
                               "style image(s) (see `restyle models`); use --init adain-lite")
        return m.run(Inputs(inputs.content, [], inputs.style_weights, names),
                     make(m.Params, model=p.model, **common))
    # the one-pass start follows the stroke direction too (the network start does not)
    return m.run(inputs, make(m.Params, masks=p.masks, stroke_angle=p.stroke_angle,
                              stroke_field=p.stroke_field, stroke_bins=p.stroke_bins,
                              stroke_stretch=p.stroke_stretch, **common))


@register
class Anytime(Method):
    name = "anytime"
    family = "image-optimization"
    task = "transfer"
    summary = ("a one-pass result at once (trained network or adain-lite), refined by Gatys "
               "optimization at the final size until --budget seconds or a plateau")
    Params = AnytimeParams

    def run(self, inputs: Inputs, params: AnytimeParams, callbacks=()) -> torch.Tensor:
        begin = time.perf_counter()
        deadline = begin + params.budget
        content, styles, regions = prepare(inputs, params, self.name)
        h, w = content.shape[-2:]
        method = choose_start(inputs, params)
        start = None
        if method:
            start = one_pass_start(method, inputs, params)
            if tuple(start.shape[-2:]) != (h, w):
                start = imaging.resize_tensor(start, (h, w))
            now = time.perf_counter()
            report = Progress(0, 1, 0, params.iterations, 0, params.iterations, (h, w),
                              float("nan"), {}, start, now - begin, max(0.0, deadline - now))
            for cb in callbacks:
                cb(report)
            # a refinement's first evaluation alone costs more than the one-pass start: with
            # less time than the start took left, the start is the result (the optimizer's
            # network is not even loaded)
            if deadline - now < now - begin:
                return finished(start.clamp(0, 1), content, regions, params)
        problem = AnytimeProblem(content, styles, inputs.style_weights, params, regions)
        problem.start = start
        if params.auto:  # the trials come out of the budget, after the start is shown
            problem = AnytimeProblem(content, styles, inputs.style_weights,
                                     auto_tuned(params, content, styles, inputs.style_weights,
                                                regions, callbacks), regions)
            problem.start = start
        return problem.solve(callbacks, deadline=deadline,
                             until=level_limits(len(problem.sizes), params.coarse, deadline))


class AnytimeProblem(GatysProblem):
    """A Gatys problem whose first level starts from ``start`` (the one-pass result) when
    it is set, else from Gatys's own init."""

    start: torch.Tensor | None = None
    #: every iterate a valid picture, the best one returned: measured better than clamping
    #: the last one at the end (docs/anytime.md)
    bounded = True

    def init(self, size: tuple[int, int]) -> torch.Tensor:
        if self.start is None:
            return super().init(size)
        out = imaging.resize_tensor(self.start, size)
        return imaging.gray_rgb(out) if self.p.preserve_color == "luminance" else out

