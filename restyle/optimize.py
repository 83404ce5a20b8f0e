"""The image-optimization engine.

An :class:`Objective` is a weighted sum of named loss terms over backbone
features (``content + 1e3 * style``, in the spirit of lucid's objectives). The
:class:`Engine` minimises an objective over the pixels of an image with L-BFGS
or Adam, with bfloat16 autocast where the CPU supports it, and reports progress
to callbacks. :func:`pyramid` runs a coarse-to-fine schedule: most iterations
happen at low resolution, where they are cheap, and each level starts from the
upsampled result of the previous one.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch

from . import runtime
from .backbone import VGG
from .imaging import resize_tensor

LossFn = Callable[[dict, torch.Tensor], torch.Tensor]


@dataclass
class Term:
    """One named loss term: ``fn(features, image)`` scaled by ``weight``."""

    name: str
    fn: LossFn
    layers: tuple[str, ...] = ()
    weight: float = 1.0


@dataclass
class Objective:
    """A weighted sum of terms. Supports ``a + b`` and ``2.0 * a``."""

    terms: list[Term] = field(default_factory=list)

    @staticmethod
    def term(name: str, fn: LossFn, layers: Iterable[str] = (), weight: float = 1.0) -> "Objective":
        return Objective([Term(name, fn, tuple(layers), weight)])

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(self.terms + other.terms)

    def __mul__(self, k: float) -> "Objective":
        return Objective([Term(t.name, t.fn, t.layers, t.weight * k) for t in self.terms])

    __rmul__ = __mul__

    @property
    def layers(self) -> list[str]:
        seen: dict[str, None] = {}
        for t in self.terms:
            for layer in t.layers:
                seen[layer] = None
        return list(seen)

    def evaluate(self, features: dict, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The total loss and each term's weighted value (summed by name)."""
        total = torch.zeros((), dtype=torch.float32)
        parts: dict[str, float] = {}
        for t in self.terms:
            if t.weight == 0:
                continue
            value = t.weight * t.fn(features, image).float()
            total = total + value
            parts[t.name] = parts.get(t.name, 0.0) + float(value.detach())
        return total, parts


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when this CPU has native bfloat16 matrix units (AVX-512 BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        return False
    # PyTorch's own kernels may be held to AVX2 (ATEN_CPU_CAPABILITY=avx2, how an AVX2-only
    # laptop is emulated): bfloat16 is then hundreds of times slower than fp32, as there
    return torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "NO AVX", "AVX2")


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> bool:
    """Whether to use bfloat16 autocast for ``precision`` in {"auto", "bf16", "fp32"}."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_supports_bf16()


@dataclass
class Progress:
    """What a callback sees after each iteration."""

    level: int  # pyramid level, 0 = coarsest
    levels: int
    iteration: int  # within the level, starting at 1
    iterations: int  # of this level
    step: int  # across all levels, starting at 1
    steps: int
    size: tuple[int, int]  # (h, w) of this level
    loss: float
    parts: dict[str, float]
    image: torch.Tensor  # current image (do not modify)
    elapsed: float
    remaining: float | None = None  # seconds to the run's deadline, if it has one


# raised by a callback to end the optimization early, keeping the image (the Engine raises it
# too when its deadline comes)
Stop = runtime.Stop


class Deadline(Stop):
    """The :class:`Engine`'s deadline came (a :class:`Stop`; :func:`run_pyramid` moves on to
    the next level when it was only that level's time limit)."""


Callback = Callable[[Progress], None]


class Guide:
    """A callback that also steers :func:`run_pyramid` from outside a method.

    Methods hand their callbacks to the :class:`Engine`, so a guide among them reaches
    the pyramid of any method built on it, without the method knowing: it may change
    the schedule, the first level's starting image and add loss terms. restyle.video
    uses one for temporal consistency (start from the warped previous frame, add the
    temporal loss). The base class changes nothing.
    """

    def __call__(self, p: Progress) -> None:
        pass

    def schedule(self, sizes: list[tuple[int, int]], iterations: list[int]
                 ) -> tuple[list[tuple[int, int]], list[int]]:
        return sizes, iterations

    def init(self, size: tuple[int, int], image: torch.Tensor) -> torch.Tensor:
        """The first level's starting image, given the method's own."""
        return image

    def terms(self, size: tuple[int, int]) -> Objective:
        """Loss terms added to the method's objective at a level."""
        return Objective()


#: Iterations over which :class:`Engine`'s plateau test measures the loss's progress.
PLATEAU_WINDOW = 20

#: The smallest short side (px) of :meth:`Engine.evaluation_seconds`'s smaller probe.
PROBE_SIDE = 32


class Engine:
    """Minimises an :class:`Objective` over an image's pixels.

    Two stopping rules besides the iteration count, for runs held to a time budget:
    ``deadline`` (a :func:`time.perf_counter` instant) ends the whole run with
    :class:`Stop` before an iteration that would finish after it (each iteration is
    expected to take as long as the previous one); ``plateau`` ends a run (one pyramid
    level) whose best loss fell by less than that fraction over the last
    :data:`PLATEAU_WINDOW` iterations. However it ends, the result is the evaluated image
    with the lowest loss (L-BFGS without a line search does not lower the loss at every
    step), clamped to [0, 1].

    ``bounded`` keeps every L-BFGS iterate in [0, 1] (clamped before it is evaluated, as
    Adam's are), so each evaluated loss, and the best one returned, is that of a valid
    picture; unbounded, L-BFGS moves pixels past the range and the final clamp raises the
    loss (measured: 0.69 to 0.84 after 60 iterations at 512 px, docs/anytime.md).
    """

    def __init__(self, vgg: VGG, optimizer: str = "lbfgs", lr: float | None = None,
                 precision: str = "auto", callbacks: Sequence[Callback] = (),
                 line_search: str | None = None, deadline: float | None = None,
                 plateau: float = 0.0, bounded: bool = False):
        if optimizer not in ("lbfgs", "adam"):
            raise ValueError(f"optimizer must be 'lbfgs' or 'adam', not {optimizer!r}")
        self.vgg = vgg
        self.optimizer = optimizer
        self.lr = lr if lr is not None else (1.0 if optimizer == "lbfgs" else 0.02)
        self.bf16 = resolve_precision(precision)
        self.callbacks = list(callbacks)
        if line_search not in (None, "strong_wolfe"):
            raise ValueError(f"line_search must be None or 'strong_wolfe', not {line_search!r}")
        self.line_search = line_search
        self.deadline = deadline
        if not plateau >= 0:
            raise ValueError(f"plateau must be a fraction >= 0, not {plateau!r}")
        self.plateau = plateau
        self.bounded = bounded

    @classmethod
    def from_params(cls, vgg: VGG, p, callbacks: Sequence[Callback] = (),
                    deadline: float | None = None, bounded: bool = False) -> "Engine":
        """The engine a method's parameters ask for (``optimizer``, ``lr`` with 0 meaning
        the optimizer's default, ``precision``, ``line_search`` and ``plateau`` where the
        method has them), ending by ``deadline`` if given."""
        line_search = getattr(p, "line_search", "none")
        return cls(vgg, getattr(p, "optimizer", "lbfgs"), getattr(p, "lr", 0) or None,
                   p.precision, callbacks, None if line_search == "none" else line_search,
                   deadline, getattr(p, "plateau", 0.0), bounded)

    def loss(self, image: torch.Tensor, objective: Objective) -> tuple[torch.Tensor, dict]:
        layers = objective.layers
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            features = self.vgg(image, layers) if layers else {}
        return objective.evaluate(features, image)

    def evaluation_seconds(self, size: tuple[int, int], layers: Sequence[str]) -> float:
        """An estimate of one evaluation's seconds at ``size`` (h, w) through ``layers``,
        from two timed on smaller images (an eighth and a quarter of the side, the smaller
        at least :data:`PROBE_SIDE` px on its short side): a fixed cost (per layer and call:
        large on a busy machine) and a cost per pixel, the latter scaled to ``size``. An
        image too small for that is timed at its own size."""
        h, w = size

        def timed(k: float) -> tuple[int, float]:
            ph, pw = max(1, round(h * k)), max(1, round(w * k))
            image = torch.rand(1, 3, ph, pw, requires_grad=True)
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                features = self.vgg(image, list(layers))
            sum(f.float().mean() for f in features.values()).backward()
            return ph * pw, time.perf_counter() - t

        k = max(1 / 8, PROBE_SIDE / min(h, w))
        if 2 * k > 1:
            return timed(1.0)[1]
        (small, t_small), (large, t_large) = timed(k), timed(2 * k)
        per_pixel = max(0.0, t_large - t_small) / max(1, large - small)
        return t_large + per_pixel * (h * w - large)

    def run(self, init: torch.Tensor, objective: Objective, iterations: int,
            progress: Callable[[int, float, dict, torch.Tensor], None] | None = None,
            expected: float = 0.0) -> torch.Tensor:
        """Optimise from ``init`` for ``iterations`` loss evaluations; returns the image.

        ``progress(iteration, loss, parts, image)`` is called after each one. The
        image is kept in [0, 1] by clamping (Adam, and L-BFGS when ``bounded``) or at the
        end (L-BFGS unbounded). The image returned is the evaluated one with the lowest
        loss. Past the deadline :class:`Stop` is raised, carrying that image as its
        ``image`` (none before the first evaluation), before any evaluation if the first,
        ``expected`` to take that many seconds, would end after it; on a plateau the run
        ends early (see the class).
        """
        image = init.detach().clone().float().requires_grad_(True)
        state: dict = {"evals": 0, "last": time.perf_counter(), "lows": [],
                       "best": math.inf, "image": None}
        if self.deadline is not None and state["last"] + expected >= self.deadline:
            raise Deadline

        def evaluate():
            runtime.check_cancelled()
            if self.bounded:
                with torch.no_grad():
                    image.clamp_(0, 1)
            total, parts = self.loss(image, objective)
            total.backward()
            loss = float(total.detach())
            if not math.isfinite(loss):
                raise FloatingPointError("the loss became NaN or infinite; lower the weights "
                                         "or the learning rate")
            state["evals"] += 1
            if loss < state["best"]:
                state["best"], state["image"] = loss, image.detach().clamp(0, 1)
            if progress is not None:
                progress(state["evals"], loss, parts, image.detach())
            self._check_stops(state, loss)
            return total.detach()

        try:
            if self.optimizer == "lbfgs":
                self._lbfgs(image, evaluate, iterations, state)
            else:
                opt = torch.optim.Adam([image], lr=self.lr)
                for _ in range(iterations):
                    opt.zero_grad(set_to_none=True)
                    try:
                        evaluate()
                    except _Plateau:
                        break
                    opt.step()
                    with torch.no_grad():
                        image.clamp_(0, 1)
        except Stop as stop:
            stop.image = state["image"]
            raise
        return state["image"] if state["image"] is not None else image.detach().clamp(0, 1)

    def _lbfgs(self, image: torch.Tensor, evaluate: Callable[[], torch.Tensor],
               iterations: int, state: dict) -> None:
        # Without a line search (as in the original) each step is one evaluation; with
        # strong Wolfe, trial points count against the same evaluation budget.
        opt = torch.optim.LBFGS([image], lr=self.lr, max_iter=iterations, max_eval=iterations,
                                history_size=50, tolerance_grad=0.0, tolerance_change=0.0,
                                line_search_fn=self.line_search)

        def closure():
            opt.zero_grad(set_to_none=True)
            return evaluate()

        while state["evals"] < iterations:
            before = state["evals"]
            try:
                opt.step(closure)
            except _Plateau:
                break
            if state["evals"] == before:
                break

    def _check_stops(self, state: dict, loss: float) -> None:
        """After an evaluation: :class:`Stop` if the next one would end past the deadline,
        :class:`_Plateau` if the loss has stopped falling."""
        now = time.perf_counter()
        if self.deadline is not None and now + (now - state["last"]) > self.deadline:
            raise Deadline
        state["last"] = now
        if self.plateau > 0:
            best = state["lows"]
            best.append(min(loss, best[-1]) if best else loss)
            if (len(best) > PLATEAU_WINDOW
                    and best[-PLATEAU_WINDOW - 1] - best[-1] < self.plateau * abs(best[-1])):
                raise _Plateau


class _Plateau(Exception):
    """Internal: the loss stopped falling; :meth:`Engine.run` returns the current image."""


def pyramid_sizes(height: int, width: int, min_side: int = 256, levels: int | None = None
                  ) -> list[tuple[int, int]]:
    """Sizes (h, w) from coarse to fine: the final size halved while the long side stays >= ``min_side``."""
    sizes = [(height, width)]
    while True:
        h, w = sizes[-1]
        if levels is not None and len(sizes) >= levels:
            break
        if levels is None and max(h, w) / 2 < min_side:
            break
        if min(h, w) < 64:
            break
        sizes.append((max(1, round(h / 2)), max(1, round(w / 2))))
    return sizes[::-1]


def run_pyramid(engine: Engine, sizes: Sequence[tuple[int, int]], iterations: Sequence[int],
                make_objective: Callable[[tuple[int, int]], Objective],
                init: Callable[[tuple[int, int]], torch.Tensor], wrap: bool = False,
                until: Sequence[float | None] | None = None,
                cost: Callable[[tuple[int, int]], float] | None = None) -> torch.Tensor:
    """Coarse-to-fine optimization: each level starts from the previous result, upsampled.

    ``make_objective(size)`` builds the level's objective (targets at that size);
    ``init(size)`` gives the first level's starting image. Callbacks on the engine
    get a :class:`Progress` after each iteration; raising :class:`Stop` ends early.
    A :class:`Guide` among them may change the schedule, the start and the objective.
    ``until`` (one per level, :func:`time.perf_counter` instants or None) ends a level at
    that time, as the engine's deadline would, and goes on to the next: how a run held to
    a time budget shares it between its levels. ``cost(size)`` estimates the seconds a
    level's targets and its first evaluation take: with a deadline, a level they would
    not fit before is not begun (the run ends with the image it has, or, on a level's own
    time limit, goes on to the next level).
    """
    guides = [cb for cb in engine.callbacks if isinstance(cb, Guide)]
    for g in guides:
        sizes, iterations = g.schedule(list(sizes), list(iterations))
    steps = sum(iterations)
    done = 0

    def finish(image: torch.Tensor) -> torch.Tensor:  # stopped early: the image at full size
        image = image.detach().clamp(0, 1)
        if image.shape[-2:] != tuple(sizes[-1]):
            image = resize_tensor(image, sizes[-1], wrap=wrap)
        return image

    start = time.perf_counter()
    image: torch.Tensor | None = None
    for level, (size, n) in enumerate(zip(sizes, iterations)):
        if image is None:
            image = init(size)
            for g in guides:
                image = g.init(size, image)
        else:
            image = resize_tensor(image, size, wrap=wrap)
        if n <= 0:
            continue
        final = engine.deadline
        limit = until[level] if until is not None else None
        end = final if limit is None or (final is not None and final <= limit) else limit
        needed = cost(size) if cost is not None and end is not None else 0.0
        if end is not None and time.perf_counter() + needed >= end:
            if end == final:
                return finish(image)  # no time left for this level's targets
            done += n
            continue
        built = time.perf_counter()
        objective = make_objective(size)
        for g in guides:
            objective = objective + g.terms(size)
        # the deadline's estimate of the first evaluation, before one has been timed: what
        # the estimate leaves after the targets, or the targets' own time (about one
        # evaluation's network passes at this size)
        built = time.perf_counter() - built
        expected = max(built, needed - built)

        def report(i, loss, parts, img, level=level, size=size, n=n):
            now = time.perf_counter()
            p = Progress(level, len(sizes), i, n, done + i, steps, size, loss, parts, img,
                         now - start, None if engine.deadline is None
                         else max(0.0, engine.deadline - now))
            for cb in engine.callbacks:
                cb(p)

        engine.deadline, start_image = end, image
        try:
            image = engine.run(image, objective, n, report, expected=expected)
        except Stop as stop:
            # the best image the level reached (its start if it made no evaluation)
            image = stop.image if getattr(stop, "image", None) is not None else start_image
            if not isinstance(stop, Deadline) or end == final:
                return finish(image)
        finally:
            engine.deadline = final
        done += n
    assert image is not None
    return image


class PyramidProblem:
    """An image optimised coarse-to-fine on the :class:`Engine`.

    Subclasses set ``vgg``, ``p`` (parameters with ``seed``, ``precision`` and, if they
    have them, ``optimizer``/``lr``/``line_search``), ``sizes`` and ``iterations`` (one
    per level), and define ``objective(size, bf16)`` and ``init(size)``; ``finish`` may
    post-process the result (colour, compositing). ``bounded`` keeps the iterates in
    [0, 1] (see :class:`Engine`); ``cost`` lets a run held to a deadline skip a level it
    has no time for (see :func:`run_pyramid`).
    """

    bounded = False

    def finish(self, out: torch.Tensor) -> torch.Tensor:
        return out

    def cost(self, engine: Engine, size: tuple[int, int]) -> float:
        """Estimated seconds to build a level's targets and make its first evaluation
        (0: unknown)."""
        return 0.0

    def solve(self, callbacks: Sequence[Callback] = (), deadline: float | None = None,
              until: Sequence[float | None] | None = None) -> torch.Tensor:
        """The optimised image; with a ``deadline`` (a :func:`time.perf_counter` instant)
        the image reached by then (see :class:`Engine`); ``until`` limits each level's time
        (see :func:`run_pyramid`)."""
        engine = Engine.from_params(self.vgg, self.p, callbacks, deadline, self.bounded)
        torch.manual_seed(self.p.seed)
        out = run_pyramid(engine, self.sizes, self.iterations,
                          lambda size: self.objective(size, engine.bf16), self.init,
                          until=until, cost=lambda size: self.cost(engine, size))
        return self.finish(out)
