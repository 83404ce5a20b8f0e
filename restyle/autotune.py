"""Automatic parameter tuning for Gatys transfer (``--auto``), per content/style pair.

The survey (Jing et al., section 7) names parameter tuning an open problem: the
defaults that suit a landscape over-stylise a face or small text, and every pair
wants its own strength. :func:`tune` chooses, without the user:

- **layer weights** by gradient normalisation (after Risser et al. 2017): each
  style layer's weight is the inverse of the norm of its loss's gradient with
  respect to the pixels at the start image, so that no layer dominates the first
  updates (:func:`normalised_layer_weights`). Risser et al. renormalise at every
  step; restyle does it once, so the result is an ordinary ``--style-layers``
  setting the user can reuse without ``--auto``;
- **strength, style scale, layer weights (normalised or not) and TV weight** by
  a search with early stopping (successive halving, as Domhan et al. and Jamieson
  & Talwalkar stop poor hyper-parameter settings early): short trial runs at low
  resolution, each scored by restyle's own metrics, the better half continued
  for more iterations, the rest dropped.

The score of a trial weighs style gained against content lost, both measured with
restyle's metrics: style gained is ``log(G0 / G)``, with ``G`` the output's mean
relative Gram distance to the style (``G0``: the photo's); content lost is the mean of
the VGG content distance and ``1 - SSIM`` of the luminance (layout and fine structure),
divided by its largest value among the trials. A setting must reach
:data:`STYLE_SHARE` of the largest style gain any trial reached; among those that do,
the one that loses the least content wins. A face whose style saturates at a low
strength keeps a low strength; a photo whose style keeps improving gets a higher one.

The trials cost at most the final run's compute (``budget``: 1 = the final run's
iterations times pixels; at least one iteration per trial, so tiny runs of a few
iterations may exceed it). Parameters the user changed from their defaults are kept
as given and not tuned. Measurements: docs/auto-tuning.md.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from . import imaging
from .evaluate import metrics
from .masks import Region
from .optimize import Engine
from .style_losses import style_targets

#: The parameters :func:`tune` may choose (each only when the user left it at its default).
TUNED = ("strength", "style_scale", "style_layers", "tv_weight")

#: Strengths of the first rung (log-spaced: strength acts on the ratio s / (1 - s)).
STRENGTHS = (0.02, 0.05, 0.1, 0.2, 0.5, 0.8)
STYLE_SCALES = (0.7, 1.4)
TV_WEIGHT = 10.0
#: Long side of the trial runs: 3/8 of the output's, at most this.
TRIAL_SIDE = 128
#: A setting must reach this share of the largest style gain (log Gram distance) seen...
STYLE_SHARE = 0.9
#: ...or pay this per unit short of it (content lost runs from 0 to 1).
SHORTFALL_PENALTY = 4.0
#: Iterations of a trial's first rung (fewer when the budget asks).
TRIAL_ITERATIONS = 20


@dataclass
class Trial:
    """One setting tried: its values, the iterations it ran and its measurements."""

    settings: dict
    iterations: int = 0
    content: float = 0.0  # VGG content distance to the photo (relu4_2)
    ssim: float = 1.0  # SSIM of the luminance with the photo
    gram: float = 0.0  # mean relative Gram distance to the style
    gram0: float = 0.0  # the photo's own Gram distance to the style
    score: float = float("-inf")
    image: torch.Tensor | None = field(default=None, repr=False)


@dataclass
class AutoResult:
    """What :func:`tune` chose: the tuned parameters, the settings that changed, the
    trials (last rung first) and the seconds the tuning took."""

    params: object
    chosen: dict
    trials: list[Trial]
    seconds: float
    trial_size: tuple[int, int]
    cost: float  # trial compute / final run compute (iterations x pixels)

    def record(self) -> dict:
        """The choice as plain data (for the CLI's --json and the log line)."""
        tried = [{"settings": t.settings, "iterations": t.iterations,
                  "content_distance": round(t.content, 4), "ssim": round(t.ssim, 4),
                  "gram_distance": round(t.gram, 4), "score": round(t.score, 4)}
                 for t in self.trials]
        return {"chosen": self.chosen, "seconds": round(self.seconds, 2),
                "trials": len(self.trials), "trial_size": list(self.trial_size),
                "cost": round(self.cost, 3), "tried": tried}

    def summary(self) -> str:
        values = ", ".join(f"{k} {v}" for k, v in self.chosen.items())
        return (f"auto: {values} ({len(self.trials)} trials at {self.trial_size[1]}x"
                f"{self.trial_size[0]} px, {self.seconds:.1f} s, {self.cost:.2f}x the final "
                "run's compute)")


def style_gradient_norms(problem, image: torch.Tensor) -> dict[str, float]:
    """The norm of each style layer's loss gradient with respect to the pixels of
    ``image``, for ``problem`` (a GatysProblem) at the image's size, in fp32."""
    size = tuple(image.shape[-2:])
    layers = list(problem.style_lw)
    region = problem.regions[0] if len(problem.regions) == 1 else None
    styles = [problem.styles[i] for i in region.styles] if region else problem.styles
    weights = region.weights if region else problem.style_weights
    targets = style_targets(problem.loss, problem.vgg, styles, weights, layers,
                            size[0] * size[1], problem.p.style_scale, False)
    x = image.detach().clone().float().requires_grad_(True)
    feats = problem.vgg(x, layers)
    norms = {}
    for name in layers:
        (g,) = torch.autograd.grad(problem.loss.loss(feats[name], targets[name]), x,
                                   retain_graph=True)
        norms[name] = float(g.norm())
    return norms


def normalised_layer_weights(problem, image: torch.Tensor) -> str:
    """Style layer weights (a ``--style-layers`` value) that give every layer's loss the
    same gradient norm at ``image``: weight ~ user weight / gradient norm, largest 1."""
    norms = style_gradient_norms(problem, image)
    raw = {k: problem.style_lw[k] / max(n, 1e-12) for k, n in norms.items()}
    top = max(raw.values())
    return ",".join(f"{k}:{v / top:.4g}" for k, v in raw.items())


def _score(trials: Sequence[Trial]) -> None:
    """The score of each measured trial, normalised over ``trials`` (see the module): the
    content lost, plus a steep penalty for falling short of :data:`STYLE_SHARE` of the
    largest style gain among the trials."""
    gain = {id(t): math.log(max(t.gram0, 1e-12) / max(t.gram, 1e-12)) for t in trials}
    gmax = max(max(gain.values()), 1e-6)
    cmax = max(max(t.content for t in trials), 1e-6)
    smax = max(max(1.0 - t.ssim for t in trials), 1e-6)
    for t in trials:
        lost = 0.5 * (t.content / cmax + (1.0 - t.ssim) / smax)
        t.score = -lost - SHORTFALL_PENALTY * max(0.0, STYLE_SHARE - gain[id(t)] / gmax)


def _gram_distance(image: torch.Tensor, styles: list[torch.Tensor], weights: list[float],
                   scale: float, cache: dict) -> float:
    """Mean relative Gram distance of ``image`` to the styles (blended by ``weights``), each
    resized as the style targets are: its area ``scale**2`` times the image's. The styles'
    Gram matrices are kept in ``cache`` per scale."""
    area = image.shape[-2] * image.shape[-1]
    if scale not in cache:
        cache[scale] = []
        for s in styles:
            k = (area * scale * scale / (s.shape[-2] * s.shape[-1])) ** 0.5
            s = imaging.resize_tensor(s, (max(16, round(s.shape[-2] * k)),
                                          max(16, round(s.shape[-1] * k))))
            cache[scale].append(metrics.style_grams(s))
    total = sum(weights)
    return sum(w / total * metrics.gram_distance(image, grams)["mean"]
               for grams, w in zip(cache[scale], weights))


def _measure(t: Trial, out: torch.Tensor, content: torch.Tensor, styles: list[torch.Tensor],
             weights: list[float], scale: float, gram0: float, cache: dict) -> None:
    """Score inputs of a trial; ``gram0`` (the photo's distance at the user's style scale)
    is common to all trials, so a style scale is not credited for a farther start."""
    t.content = metrics.content_distance(out, content)
    t.ssim = metrics.ssim_luminance(out, content)
    t.gram = _gram_distance(out, styles, weights, scale, cache)
    t.gram0 = gram0


def final_cost(problem) -> float:
    """Iterations times pixels of ``problem``'s pyramid."""
    return float(sum(n * h * w for (h, w), n in zip(problem.sizes, problem.iterations)))


def tune(content: torch.Tensor, styles: list[torch.Tensor], style_weights: list[float], p,
         regions: list[Region] | None = None, budget: float = 1.0,
         trial_side: int = TRIAL_SIDE) -> AutoResult:
    """Choose the :data:`TUNED` parameters of ``p`` (GatysParams) that the user left at
    their defaults, for this content (at its final size) and these styles; returns the
    tuned parameters (``auto`` off) with what was chosen. The trials cost at most
    ``budget`` times the final run's iterations x pixels."""
    # lazy: restyle.methods.gatys imports this module (its --auto)
    from .methods.gatys import GatysParams, GatysProblem
    start = time.perf_counter()
    defaults = GatysParams()
    free = [k for k in TUNED if getattr(p, k) == getattr(defaults, k)]
    base = dataclasses.replace(p, auto=False)
    final = GatysProblem(content, styles, style_weights, base, regions)
    h, w = content.shape[-2:]
    side = max(32, min(trial_side, round(0.375 * max(h, w))))
    th, tw = imaging.fit_size(h, w, side)
    small = imaging.resize_tensor(content, (th, tw))

    if not free:
        return AutoResult(base, {}, [], time.perf_counter() - start, (th, tw), 0.0)

    # the plan: rung 1 tries strengths; rung 2 continues the better half and tries the
    # best with normalised layer weights, other style scales and a TV weight; rung 3
    # continues the best two
    rung1 = [{"strength": s, "layers": "given"}
             for s in (STRENGTHS if "strength" in free else (p.strength,))]
    n1 = len(rung1)
    # trial iterations per rung-1 iteration: rung 1, its better half once more, up to four
    # variants for two, the last two for two more
    units = n1 + n1 // 2 + 2 * 4 + 2 * 2
    iters = max(1, min(TRIAL_ITERATIONS, p.iterations,
                       int(budget * final_cost(final) / (units * th * tw))))

    normalised = ""
    if "style_layers" in free:
        probe = GatysProblem(small, styles, style_weights, base, regions)
        normalised = normalised_layer_weights(probe, probe.init((th, tw)))

    spent = 0.0
    grams: dict = {}  # the styles' Gram matrices per style scale, at the trial size
    gram0 = _gram_distance(small, final.styles, style_weights, p.style_scale, grams)

    def settings_params(s: dict):
        values = {"strength": s["strength"], "style_scale": s.get("style_scale", p.style_scale),
                  "tv_weight": s.get("tv_weight", p.tv_weight), "min_size": 0}
        if s["layers"] == "normalised":
            values["style_layers"] = normalised
        return dataclasses.replace(base, **values)

    built: dict[int, tuple] = {}  # per trial: its problem, engine and objective

    def run(t: Trial, n: int) -> None:
        nonlocal spent
        q = settings_params(t.settings)
        if id(t) not in built:
            problem = GatysProblem(small, styles, style_weights, q, regions)
            engine = Engine.from_params(problem.vgg, q)
            built[id(t)] = problem, engine, problem.objective((th, tw), engine.bf16)
        problem, engine, objective = built[id(t)]
        torch.manual_seed(q.seed)
        init = t.image if t.image is not None else problem.init((th, tw))
        t.image = engine.run(init, objective, n)
        t.iterations += n
        spent += n * th * tw
        _measure(t, problem.finish(t.image), small, problem.styles, style_weights,
                 q.style_scale, gram0, grams)

    trials = [Trial(s) for s in rung1]
    for t in trials:
        run(t, iters)
    _score(trials)
    alive = sorted(trials, key=lambda t: -t.score)[:max(1, len(trials) // 2)]
    best = alive[0].settings
    variants = []
    if "style_layers" in free:
        variants.append(dict(best, layers="normalised"))
    if "style_scale" in free:
        variants += [dict(best, style_scale=k) for k in STYLE_SCALES]
    if "tv_weight" in free:
        variants.append(dict(best, tv_weight=TV_WEIGHT))
    new = [Trial(v) for v in variants]
    for t in new:
        run(t, 2 * iters)
    for t in alive:
        run(t, iters)
    everything = trials + new
    _score(everything)
    alive = sorted(alive + new, key=lambda t: -t.score)[:2]
    if len(alive) > 1:
        for t in alive:
            run(t, 2 * iters)
        _score(everything)
    winner = max(alive, key=lambda t: t.score)
    tuned = settings_params(winner.settings)
    tuned = dataclasses.replace(tuned, min_size=p.min_size)
    chosen = {k: getattr(tuned, k) for k in free}
    for t in everything:
        t.image = None
    order = sorted(everything, key=lambda t: (-t.iterations, -t.score))
    return AutoResult(tuned, chosen, order, time.perf_counter() - start, (th, tw),
                      spent / final_cost(final))


def report(callbacks: Sequence[Callable], result: AutoResult) -> None:
    """Tell the callbacks that have an ``on_tuned(result)`` method what was chosen."""
    for cb in callbacks:
        hook = getattr(cb, "on_tuned", None)
        if hook is not None:
            hook(result)
