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
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from .. import __version__, imaging
from ..errors import RestyleError
from ..methods import Inputs, all_methods, get_method
from ..optimize import Engine, Stop, cpu_supports_bf16
from ..params import make

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


def worker_speed(job: dict) -> dict:
    torch.manual_seed(0)
    method = get_method(job["method"])
    content, style = _load(job["content"]), _load(job["style"])
    inputs = Inputs(None if method.task == "texture" else content, [style], [1.0])
    size = job["size"]
    out: dict = {"method": method.name, "size": size}
    # warm-up: weights, oneDNN kernels
    _sec_per_iteration(method, inputs, 128, "auto", 1)  # 128: the smallest size every method takes
    out["sec_per_iter"] = _sec_per_iteration(method, inputs, size, "auto", job["iters"])
    out["sec_per_iter_fp32"] = _sec_per_iteration(method, inputs, size, "fp32", job["iters"])
    if job.get("full"):
        params = _params(method, size)
        t = time.perf_counter()
        method.run(inputs, params)
        out["default_seconds"] = time.perf_counter() - t
        out["default_iterations"] = params.iterations
    out["peak_mb"] = _peak_mb()
    return out


def _inputs_for(method, content, style, job: dict) -> Inputs:
    if method.style_kind == "name":  # a trained network: the style is a name in the model
        from ..methods.network import default_model
        from ..nets.stylenet import get_stylenet
        model = job.get("params", {}).get("model") or default_model()
        name = job.get("style_name") or get_stylenet(model).styles[0]
        return Inputs(content, [], [1.0], [name])
    return Inputs(content if method.task == "transfer" else None, [style], [1.0])


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
        sized = {"size": size if method.task == "transfer" else f"{size}x{size}"}
        method.run(inputs, make(method.Params, **{**extra, "size": 64} if method.task ==
                                "transfer" else {**extra, "size": "64x64"}))  # warm-up
        params = make(method.Params, **{**extra, **sized})
        t = time.perf_counter()
        method.run(inputs, params)
        out["first_seconds"] = time.perf_counter() - t
        times = []
        for _ in range(job["repeats"]):
            t = time.perf_counter()
            method.run(inputs, params)
            times.append(time.perf_counter() - t)
        out["seconds"] = statistics.median(times)
        out["runs"] = len(times)
    except RestyleError as e:
        out["unavailable"] = str(e)
    out["peak_mb"] = _peak_mb()
    return out


def worker_reference(job: dict) -> dict:
    """Gatys reference (fp32, full size, L-BFGS, N its) vs restyle defaults, same loss."""
    from ..methods.gatys import GatysParams, GatysProblem

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


def iterative(method) -> bool:
    """Methods timed per optimizer iteration (they have size, iterations and min_size)."""
    fields = set(getattr(method.Params, "__dataclass_fields__", {}))
    return method.family == "image-optimization" and {"size", "iterations", "min_size"} <= fields


def variants(method) -> list[dict]:
    """Settings a one-pass method is timed with: its defaults; a network also on onnxruntime
    when that is installed."""
    if method.name == "network":
        import importlib.util
        return [{}, {"runtime": "onnx"}] if importlib.util.find_spec("onnxruntime") else [{}]
    return [{}]


def _spawn(kind: str, job: dict) -> dict:
    cmd = [sys.executable, "-m", "restyle.evaluate.bench", "--worker", kind, json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RestyleError(f"benchmark worker {kind} {job} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- report

def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "bf16_cpu": cpu_supports_bf16(), "torch": torch.__version__,
            "python": platform.python_version(), "restyle": __version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


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
            f"bfloat16 CPU support: {m['bf16_cpu']}. torch {m['torch']}, Python {m['python']}, "
            f"restyle {m['restyle']}.", ""]


def write_reports(md_path: Path, markdown: str, json_path: Path, result: dict) -> None:
    """The markdown report and the JSON results, each written atomically."""
    for path, text in ((md_path, markdown), (json_path, json.dumps(result, indent=1))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    print(f"wrote {md_path.resolve()} and {json_path.resolve()}")


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
    lines += ["## Every method: speed and memory", "",
              "| method | family | size | s/iter (default precision) | s/iter fp32 | "
              "default result | peak memory |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["speed"]:
        default = (f"{r['default_seconds']:.1f} s ({r['default_iterations']} it at top)"
                   if "default_seconds" in r else "not run (see --full)")
        lines.append(f"| {r['method']} | {r['family']} | {r['size']} | {r['sec_per_iter']:.3f} | "
                     f"{r['sec_per_iter_fp32']:.3f} | {default} | {r['peak_mb']:.0f} MB |")
    lines += ["", "Optimization methods run a pyramid by default: the top level's iterations "
              "cost the s/iter above, each coarser level (twice the iterations at a quarter "
              "of the pixels) about half as much again.", ""]
    if result.get("one_pass"):
        gatys = {r["size"]: r["default_seconds"] for r in result["speed"]
                 if r["method"] == "gatys" and "default_seconds" in r}
        lines += ["## One-pass methods: seconds per image", "",
                  "Median of warm runs at each size (style features cached, as when one style "
                  "is applied to many photos), the first call with the style's encoding, peak "
                  "memory, and how many times faster than restyle's Gatys default result for "
                  "the same pair at that size.", "",
                  "| method | settings | size | seconds (warm median) | first call | "
                  "vs Gatys default | peak memory |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in result["one_pass"]:
            settings = ", ".join(f"{k}={v}" for k, v in r.get("params", {}).items()) or "defaults"
            if "unavailable" in r:
                lines.append(f"| {r['method']} | {settings} | {r['size']} | not available: "
                             f"{r['unavailable'].split(';')[0]} | | | |")
                continue
            vs = (f"{gatys[r['size']] / r['seconds']:.0f}x faster" if r["size"] in gatys
                  else "-")
            lines.append(f"| {r['method']} | {settings} | {r['size']} | {r['seconds']:.3f} | "
                         f"{r['first_seconds']:.3f} | {vs} | {r['peak_mb']:.0f} MB |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["batch"]:  # restyle bench batch: throughput of restyle batch
        from .bench_batch import main as batch_main
        return batch_main(argv[1:])
    parser = argparse.ArgumentParser(prog="restyle bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="",
                        help="comma-separated methods (default: all optimization methods)")
    parser.add_argument("--sizes", default="256,512,1024", help="long sides in pixels")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per size")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed warm runs per size of the one-pass methods (median)")
    parser.add_argument("--full", default="256,512",
                        help="sizes at which to also time a full default run ('' for none)")
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                        help="run the Gatys reference comparison (about 10 minutes at 512 px)")
    parser.add_argument("--reference-size", type=int, default=512)
    parser.add_argument("--reference-iterations", type=int, default=500)
    parser.add_argument("--content", default=None, help="content image (default: Tübingen)")
    parser.add_argument("--style", default=None, help="style image (default: Starry Night)")
    parser.add_argument("-o", "--output", default="BENCHMARKS.md",
                        help="markdown report (replaced; default BENCHMARKS.md)")
    parser.add_argument("--json", default="benchmarks.json", help="JSON results (replaced)")
    parser.add_argument("--render", metavar="JSON",
                        help="only rewrite the markdown report from an earlier JSON result")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.epilog = "`restyle bench batch --help`: throughput of restyle batch (images/s)."
    ns = parser.parse_args(argv)
    if ns.render:
        try:
            result = json.loads(Path(ns.render).read_text())
        except (OSError, ValueError) as e:
            raise RestyleError(f"cannot read benchmark results {ns.render}: {e}") from None
        Path(ns.output).write_text(render_markdown(result))
        print(f"wrote {Path(ns.output).resolve()}")
        return 0
    if ns.worker:
        kind, job = ns.worker[0], json.loads(ns.worker[1])
        if kind == "batch":
            from .bench_batch import worker_batch
            res = worker_batch(job)
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
            for params in variants(m):
                r = _spawn("onepass", {"method": m.name, "content": content, "style": style,
                                       "size": size, "repeats": ns.repeats, "params": params})
                r["family"] = m.family
                result["one_pass"].append(r)
    write_reports(out_md, render_markdown(result), Path(ns.json), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
