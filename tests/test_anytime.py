"""Anytime stylization and the engine's time budget: stops by the deadline or on a plateau
with a valid image; budget 0 is the one-pass start; refinement lowers the loss."""

import time

import numpy as np
import pytest
from restyle.errors import RestyleError
import torch

import restyle
from restyle import imaging, optimize
from restyle.cli import main
from restyle.methods import Inputs
from restyle.methods.anytime import AnytimeParams, choose_start, level_limits, start_strength
from restyle.optimize import Engine, Objective, run_pyramid
from restyle.params import make

from .conftest import stripes

SMALL = dict(size=64, precision="fp32")


def pixel_objective(target: torch.Tensor, floor: float = 0.0) -> Objective:
    """A loss on the pixels alone (no network): squared distance to ``target`` plus
    ``floor``, so that the loss levels off at ``floor`` instead of reaching 0."""
    return Objective.term("pixels", lambda _, img: ((img - target) ** 2).mean() + floor)


def test_engine_stops_at_the_deadline_with_a_valid_image():
    torch.manual_seed(0)
    start, target = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)

    def slow(_, img):  # 20 ms an evaluation: a run of 10^6 of them must be cut short
        time.sleep(0.02)
        return ((img - target) ** 2).mean()

    run_pyramid(Engine(None, "adam"), [(32, 32)], [1], lambda size: pixel_objective(target),
                lambda size: start)  # warm-up: the optimizer's first step imports modules
    seen = []
    engine = Engine(None, "adam", lr=0.05, callbacks=[lambda p: seen.append(p.step)],
                    deadline=time.perf_counter() + 0.5)
    t = time.perf_counter()
    out = run_pyramid(engine, [(32, 32)], [10 ** 6], lambda size: Objective.term("p", slow),
                      lambda size: start)
    elapsed = time.perf_counter() - t
    assert elapsed < 1.5  # the deadline, with room for a busy machine; not 10^6 evaluations
    assert 3 < len(seen) < 50
    assert out.shape == start.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert float(((out - target) ** 2).mean()) < float(((start - target) ** 2).mean())


def test_engine_past_deadline_returns_the_start_untouched():
    start = torch.rand(1, 3, 16, 16)
    made = []
    engine = Engine(None, deadline=time.perf_counter() - 1)
    out = run_pyramid(engine, [(16, 16)], [50], lambda size: made.append(size) or
                      pixel_objective(torch.zeros_like(start)), lambda size: start)
    assert torch.equal(out, start)
    assert made == []  # not even the level's targets were computed


def test_engine_skips_an_evaluation_that_cannot_end_in_time():
    """The targets' cost estimates the first evaluation: with 0.3 s of targets and 0.5 s
    left, the run returns its start at once instead of ending an evaluation late."""
    start = torch.rand(1, 3, 16, 16)

    def objective(size):
        time.sleep(0.3)
        return pixel_objective(torch.zeros_like(start))

    seen = []
    engine = Engine(None, callbacks=[seen.append], deadline=time.perf_counter() + 0.5)
    out = run_pyramid(engine, [(16, 16)], [50], objective, lambda size: start)
    assert torch.equal(out, start) and seen == []


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_engine_ends_a_level_on_a_plateau(optimizer):
    torch.manual_seed(0)
    start, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    losses = []
    engine = Engine(None, optimizer, lr=0.05 if optimizer == "adam" else None,
                    callbacks=[lambda p: losses.append(p.loss)], plateau=1e-3)
    out = run_pyramid(engine, [(16, 16)], [5000], lambda size: pixel_objective(target, 1.0),
                      lambda size: start)
    assert optimize.PLATEAU_WINDOW < len(losses) < 5000
    assert losses[-1] < losses[0] and losses[-1] < 1.01
    assert out.shape == start.shape
    # without the plateau rule the same run uses its whole iteration count
    losses.clear()
    engine = Engine(None, optimizer, lr=0.05 if optimizer == "adam" else None,
                    callbacks=[lambda p: losses.append(p.loss)])
    run_pyramid(engine, [(16, 16)], [60], lambda size: pixel_objective(target, 1.0),
                lambda size: start)
    assert len(losses) == 60


def test_budget_zero_is_the_one_pass_start(photo, style_path):
    start = restyle.transfer(photo, style_path, method="adain-lite",
                             strength=start_strength(0.5), **SMALL)
    anytime = restyle.transfer(photo, style_path, method="anytime", init="adain-lite", budget=0,
                               **SMALL)
    assert np.array_equal(np.asarray(start), np.asarray(anytime))


def test_refinement_lowers_the_loss_from_the_start(photo, style_path):
    steps = []
    out = restyle.transfer(photo, style_path, method="anytime", init="adain-lite", budget=600,
                           iterations=12, plateau=0, callbacks=[steps.append], **SMALL)
    start = restyle.transfer(photo, style_path, method="adain-lite",
                             strength=start_strength(0.5), **SMALL)
    assert steps[0].step == 0 and np.isnan(steps[0].loss)  # the one-pass start, shown first
    assert [p.step for p in steps[1:]] == list(range(1, 13))
    assert steps[-1].loss < 0.8 * steps[1].loss  # step 1: the loss of the start image
    diff = np.abs(np.asarray(out, float) - np.asarray(start, float)).mean()
    assert diff > 1  # the refinement changed the picture


def test_start_choice(style_path):
    def inputs(names):
        return Inputs(None, [None] * len(names), [1.0] * len(names), names)

    p = make(AnytimeParams)
    if not restyle.api.models()["models"]:
        pytest.skip("no style network installed")
    from restyle.methods.network import default_model
    from restyle.nets.stylenet import get_stylenet
    known = get_stylenet(default_model()).styles[0]
    assert choose_start(inputs([known]), p) == "adain-lite"  # a budget to refine in
    short = make(AnytimeParams, budget=2)
    assert choose_start(inputs([known]), short) == "network"  # the painting the network knows
    assert choose_start(inputs(["holiday_snap"]), short) == "adain-lite"
    assert choose_start(inputs([known]), make(AnytimeParams, init="network")) == "network"
    assert choose_start(inputs(["holiday_snap"]), p) == "adain-lite"
    assert choose_start(inputs([""]), p) == "adain-lite"  # an image not from a file
    assert choose_start(inputs([known]), make(AnytimeParams, budget=2, masks="m.png")) == \
        "adain-lite"
    assert choose_start(inputs([known]), make(AnytimeParams, init="adain")) == "adain"
    assert choose_start(inputs([known]), make(AnytimeParams, init="noise")) == ""


def test_cli_transfer_defaults_to_anytime(photo, tmp_path, capsys):
    import json
    style = tmp_path / "style.png"
    from PIL import Image
    Image.fromarray(stripes(48)).save(style)
    out = tmp_path / "out.png"
    code = main(["transfer", str(photo), str(style), "-o", str(out), "--size", "48",
                 "--budget", "0", "--json", "-q"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads(stdout)
    assert record["method"] == "anytime" and record["params"]["budget"] == 0
    assert out.is_file()


@pytest.mark.parametrize("value,message", [
    ("-1", "--budget must be at least 0.0, not -1.0"),
    ("soon", "argument --budget: invalid float value: 'soon'"),
    ("inf", "--budget must be a finite number"),
])
def test_bad_budget_is_one_line(value, message, photo, style_path, tmp_path, capsys):
    out = tmp_path / "out.png"
    code = main(["transfer", str(photo), str(style_path), "-o", str(out), "--budget", value])
    _, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restyle: error:") and message in lines[0]
    assert not out.exists()


def test_auto_precision_is_fp32_when_torch_is_held_to_avx2(monkeypatch):
    optimize.cpu_supports_bf16.cache_clear()
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    try:
        assert optimize.resolve_precision("auto") is False
        assert optimize.resolve_precision("bf16") is True  # asked for: still given
    finally:
        optimize.cpu_supports_bf16.cache_clear()


def test_a_level_time_limit_moves_on_to_the_next_level():
    """``until`` ends a level at its time and the next level runs (how anytime shares its
    budget between a coarse level and the final size)."""
    torch.manual_seed(0)
    target = torch.rand(1, 3, 16, 16)

    def slow(_, img):  # 10 ms an evaluation: the coarse level's 10^6 must be cut short
        time.sleep(0.01)
        return ((img - imaging.resize_tensor(target, tuple(img.shape[-2:]))) ** 2).mean()

    run_pyramid(Engine(None, "adam"), [(8, 8)], [1], lambda size: pixel_objective(target[..., :8, :8]),
                lambda size: torch.rand(1, 3, *size))  # warm-up: the first step imports modules
    seen = []
    engine = Engine(None, "adam", lr=0.05, callbacks=[seen.append])
    t = time.perf_counter()
    out = run_pyramid(engine, [(8, 8), (16, 16)], [10 ** 6, 15],
                      lambda size: Objective.term("p", slow),
                      lambda size: torch.rand(1, 3, *size), until=[t + 0.4, None])
    assert time.perf_counter() - t < 3
    coarse = [p for p in seen if p.level == 0]
    assert 3 < len(coarse) < 10 ** 6 and coarse[-1].size == (8, 8)
    assert [p.iteration for p in seen if p.level == 1] == list(range(1, 16))
    assert out.shape[-2:] == (16, 16)


def test_anytime_coarse_level_inside_the_budget_lowers_the_loss(photo, style_path):
    """With a pyramid (--min-size) the start is refined at the coarse level first, then at
    the final size; the result's loss at the final size is below the start's. (The share of
    the budget each level gets is :func:`level_limits`, applied as in the engine test
    above; here the iteration cap ends the levels, so the test does not depend on the
    machine's speed.)"""
    from restyle.methods import get_method
    from restyle.methods.gatys import GatysProblem, prepare
    from restyle.optimize import Engine as Judge
    steps = []
    p = make(AnytimeParams, size=96, min_size=48, budget=600, iterations=5, coarse=0.3,
             plateau=0, init="adain-lite", precision="fp32")
    inputs = Inputs(imaging.load_image(photo), [imaging.load_image(style_path)], [1.0],
                    ["demo_style"])
    out = get_method("anytime").run(inputs, p, [steps.append])
    assert [s.size for s in steps[1:]] == [(48, 48)] * 10 + [(96, 96)] * 5
    content, styles, _ = prepare(inputs, p, "anytime")
    problem = GatysProblem(content, styles, [1.0], p)
    objective = problem.objective((96, 96), bf16=False)
    judge = Judge(problem.vgg, precision="fp32")
    with torch.no_grad():
        before = float(judge.loss(steps[0].image, objective)[0])
        after = float(judge.loss(out, objective)[0])
    assert after < 0.8 * before


def test_level_limits_share_the_time_left():
    now = 1000.0  # a fixed instant: the shares must not depend on the machine's speed
    limits = level_limits(3, 0.4, now + 10, now=now)
    assert limits[2] is None  # the final size: until the deadline
    assert limits[0] - now == pytest.approx(2.0) and limits[1] - now == pytest.approx(4.0)
    assert level_limits(3, 0.4, now - 1, now=now)[:2] == [now, now]  # past the deadline
    assert level_limits(1, 0.4, now + 10, now=now) == [None]
    started = time.perf_counter()  # the default instant is the present one
    live = level_limits(2, 0.5, started + 10)
    assert 5.0 - 1e-6 <= live[0] - started <= 5.0 + 0.5  # plus half the time between the calls


def test_frontier_reports_the_warm_start_target_and_the_curves():
    """bench frontier's sections from measured rows: the warm-start target is met only when
    the run at 1/8 of the reference's time ends at or below its loss; Gatys's own progress
    (when it comes within 5% of its final Gram distance) is read off its curve."""
    from restyle.evaluate.bench_frontier import curve_lines, reference_lines
    ref = {"content": "c/tubingen.jpg", "style": "s/starry_night.jpg", "size": [384, 512],
           "ref_iterations": 100, "ref_loss": 0.5, "ref_seconds": 80.0,
           "ref_trace": [(50, 40.0, 0.9), (100, 80.0, 0.5)],
           "anytime": [{"share": 1 / 8, "plateau": 0.001, "seconds": 10.0, "final_loss": 0.6,
                        "start": "auto", "min_size": 0, "seconds_to_ref_loss": None,
                        "trace": []},
                       {"share": 0.3, "plateau": 0.0, "seconds": 24.0, "final_loss": 0.45,
                        "seconds_to_ref_loss": 20.0, "start": "auto", "min_size": 0,
                        "trace": [(0, 1.0, 2.0), (10, 8.0, 0.8), (30, 20.0, 0.49)]}]}
    text = "\n".join(reference_lines(ref))
    assert "**not met** (at 1/8 of the time: loss 0.6000 against 0.5000, 1.20x)" in text
    assert "| 50 | 0.9000 | 40.0 s | 8.0 s | 0.200 |" in text
    assert "after 20.0 s, 0.250 of the reference's time" in text
    ref["anytime"][0]["final_loss"] = 0.5
    assert "**met**" in "\n".join(reference_lines(ref))

    def row(label, seconds, curve):
        return {"label": label, "seconds": seconds, "curve": curve}
    result = {"pairs": [{"rows": [row("gatys", 100.0, [[1.2, 0.1, 0.5], [2.1, 0.5, 0.2],
                                                       [3.0, 0.6, 0.0104], [100.0, 0.4, 0.01]]),
                                  row("anytime-30s", 30.0, [[1.0, 0.5, 0.1], [30.0, 0.7, 0.02]])]}]}
    text = "\n".join(curve_lines(result))
    assert "| 1 | 0.100 | 0.5000 | 0.500 | 0.1000 |" in text
    assert "| 2 | 0.500 | 0.2000 | - | - |" in text  # anytime's run had ended
    assert "| end | 0.400 | 0.0100 | 0.700 | 0.0200 |" in text
    assert "within 5% of its own final Gram distance after 0.03 of its time" in text
    assert "(gatys: 1, anytime-30s: 1)" in text


def test_frontier_refuses_an_unwritable_report_before_any_work(tmp_path, capsys):
    from restyle.evaluate import bench_frontier

    missing = tmp_path / "no-such-folder" / "frontier.md"
    started = []
    real_spawn = bench_frontier._spawn
    bench_frontier._spawn = lambda *a, **k: started.append(a) or {}
    try:
        with pytest.raises(RestyleError, match="no-such-folder"):
            bench_frontier.main(["--pairs", "diagonal", "--output", str(missing),
                                 "--json", str(tmp_path / "f.json"),
                                 "--plot", str(tmp_path / "f.png")])
    finally:
        bench_frontier._spawn = real_spawn
    assert not started


def test_engine_returns_the_lowest_loss_iterate():
    """Adam with a large step overshoots and oscillates: the run returns the image with the
    lowest loss it evaluated, not its last one."""
    torch.manual_seed(0)
    start, target = torch.rand(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5)
    seen = []
    out = Engine(None, "adam", lr=0.1).run(
        start, pixel_objective(target), 10, lambda i, loss, parts, img: seen.append(
            (loss, img.clone())))
    best_loss, best = min(seen, key=lambda s: s[0])
    assert seen[-1][0] > 1.5 * best_loss  # the last iterate is not the best one
    assert torch.equal(out, best)


def test_anytime_returns_its_best_valid_iterate(photo, style_path):
    """Every iterate the refinement shows is a picture in [0, 1] and the result is the one
    with the lowest loss, judged again after the run (before: L-BFGS's iterates left
    [0, 1] and the last one was clamped at the end, which judged 0.70 where the iterates
    had reached 0.48)."""
    from restyle.methods import get_method
    from restyle.methods.anytime import AnytimeProblem
    from restyle.methods.gatys import prepare

    inputs = Inputs(imaging.load_image(photo), [imaging.load_image(style_path)], [1.0], ["demo"])
    params = make(AnytimeParams, init="adain-lite", budget=600, iterations=15, plateau=0,
                  **SMALL)
    steps = []
    out = get_method("anytime").run(inputs, params, [steps.append])
    shown = steps[1:]
    assert len(shown) == 15
    assert all(0 <= float(p.image.min()) and float(p.image.max()) <= 1 for p in shown)
    content, styles, regions = prepare(inputs, params, "anytime")
    problem = AnytimeProblem(content, styles, [1.0], params, regions)
    judge = Engine(problem.vgg, precision="fp32")
    with torch.no_grad():
        final = float(judge.loss(out, problem.objective(tuple(out.shape[-2:]), False))[0])
    best = min(p.loss for p in shown)
    assert final == pytest.approx(best, rel=1e-4)
    assert best < 0.8 * shown[0].loss


def test_a_budget_with_no_time_for_the_targets_ends_in_time_with_the_start(
        photo, style_path, monkeypatch):
    """Under load (here the optimizer's network made slow: 1.2 s a pass at 128 x 128 px), a
    budget with room for the one-pass start but not for the targets and one evaluation
    returns the start within the budget: the targets are not built first (before: they
    were, and the call overran by their time)."""
    from restyle.backbone import VGG, get_vgg

    small = dict(SMALL, size=128)
    get_vgg()  # loaded once per process: not what is measured
    t = time.perf_counter()
    start = restyle.transfer(photo, style_path, method="adain-lite",
                             strength=start_strength(0.5), **small)
    budget = 2 * (time.perf_counter() - t) + 1.0  # the start, however busy the machine
    forward = VGG.forward

    def slow(self, image, layers, start=None):
        time.sleep(1.2 * image.shape[-2] * image.shape[-1] / 128 ** 2)
        return forward(self, image, layers, start)

    monkeypatch.setattr(VGG, "forward", slow)
    t = time.perf_counter()
    out = restyle.transfer(photo, style_path, method="anytime", init="adain-lite",
                           budget=budget, **small)
    assert time.perf_counter() - t < budget  # the targets alone: 2 passes, 2.4 s
    assert np.array_equal(np.asarray(start), np.asarray(out))
