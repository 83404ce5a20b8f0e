"""``restyle bench batch``: throughput of ``restyle batch`` in images per second.

For each method (the trained ``network`` and AdaIN by default) it stylises the same set of
photos at one output size with the local engine at each worker count and with a local
Ray, each run in its own process (models loaded inside the measurement, as a real run
loads them). It reports the wall time, images/s over the whole run, images/s in the
steady state (after the first quarter of the results, so that model loading, actor start
and Ray Data's bursty hand-over of results are left out) and the time to the first result; Ray's overhead is
its steady rate against the local engine's at the same worker count. Results go to a
markdown report and a JSON file, like ``restyle bench``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from .. import imaging
from ..batch import _ray_init, run_batch
from ..errors import RestyleError
from ..methods.network import default_model as installed_default
from ..nets.stylenet import get_stylenet
from .bench import SHARED, _spawn, default_inputs, machine_info, report_head, write_reports

def make_photos(folder: Path, count: int, long_side: int) -> list[Path]:
    """``count`` distinct JPEG photos (crops and mirror images of the shared content photos,
    or of scikit-image's when those are missing), a little larger than ``long_side``."""
    sources = sorted((SHARED / "content").glob("*.jpg")) if (SHARED / "content").is_dir() else []
    images = [imaging.load_image(p) for p in sources]
    if not images:
        from skimage import data
        images = [imaging.load_image(getattr(data, n)()) for n in ("astronaut", "chelsea",
                                                                   "coffee", "rocket")]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        img = images[i % len(images)]
        k = i // len(images)
        w, h = img.size
        crop = 1.0 - 0.08 * (k % 4)
        cw, ch = int(w * crop), int(h * crop)
        x0, y0 = (w - cw) * (k % 3) // 2, (h - ch) * ((k + 1) % 3) // 2
        piece = img.crop((x0, y0, x0 + cw, y0 + ch))
        if k % 2:
            piece = piece.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        piece = imaging.resize(piece, imaging.fit_size(*piece.size, int(long_side * 1.25)))
        path = folder / f"photo_{i:04d}.jpg"
        piece.save(path, quality=92)
        out.append(path)
    return out


def worker_batch(job: dict) -> dict:
    """One measured run of :func:`restyle.batch.run_batch` (in its own process)."""
    out = Path(tempfile.mkdtemp(prefix="restyle-bench-batch-"))
    stamps: list[float] = []
    res = {k: job[k] for k in ("method", "engine", "workers", "size")}
    try:
        ray_init = None
        if job["engine"] == "ray":
            t = time.perf_counter()
            _ray_init(None)
            ray_init = time.perf_counter() - t
        start = time.perf_counter()
        summary = run_batch(job["inputs"], out, job["style"], method=job["method"],
                            engine=job["engine"], workers=job["workers"], size=job["size"],
                            progress=lambda r, s: r and stamps.append(time.perf_counter()),
                            **job.get("params", {}))
        wall = time.perf_counter() - start
    except RestyleError as e:
        res["unavailable"] = str(e)
        return res
    finally:
        shutil.rmtree(out, ignore_errors=True)
    # steady state: after the first quarter of the results (at least one per worker), which
    # absorbs model loading, actor start and Ray Data handing results over in bursts
    n = len(stamps)
    k = max(summary.workers, n // 4)
    steady = (n - k) / (stamps[-1] - stamps[k - 1]) if n > k and stamps[-1] > stamps[k - 1] \
        else None
    w = summary.workers
    res.update(workers=w, images=summary.done, failed=summary.failed, wall_seconds=wall,
               images_per_second=summary.done / wall if wall > 0 else None,
               steady_images_per_second=steady,
               first_result_seconds=stamps[0] - start if stamps else None,
               ray_init_seconds=ray_init)
    return res


def render(result: dict) -> str:
    lines = report_head("Batch throughput", result) + [
             f"{result['images']} photos, output long side {result['size']} px. Steady "
             "images/s counts from the end of the first quarter of the results to the last "
             "(model loading, actor start and Ray's bursty hand-over left out); wall images/s "
             "includes them (Ray's own start, measured separately, is not in the wall time).",
             "", "| method | settings | engine | workers | wall | images/s (wall) | "
             "images/s (steady) | first result | Ray start |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def fmt(v, spec=".2f", unit=""):
        return "-" if v is None else f"{v:{spec}}{unit}"

    for r in result["runs"]:
        settings = ", ".join(f"{k}={Path(str(v)).name}" for k, v in r.get("params", {}).items())
        if "unavailable" in r:
            lines.append(f"| {r['method']} | {settings} | {r['engine']} | {r['workers']} | "
                         f"not available: {r['unavailable']} | | | | |")
            continue
        lines.append(f"| {r['method']} | {settings} | {r['engine']} | {r['workers']} | "
                     f"{fmt(r['wall_seconds'], '.1f', ' s')} | {fmt(r['images_per_second'])} | "
                     f"{fmt(r['steady_images_per_second'])} | "
                     f"{fmt(r['first_result_seconds'], '.1f', ' s')} | "
                     f"{fmt(r['ray_init_seconds'], '.1f', ' s')} |")
    overheads = result.get("ray_overhead", [])
    if overheads:
        lines += ["", "Ray against the local engine at the same number of workers (steady "
                  "state; positive: Ray is slower):", ""]
        lines += [f"- {o['method']}, {o['workers']} workers: {o['overhead'] * 100:+.0f}%"
                  for o in overheads]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="restyle bench batch",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="network,adain",
                        help="comma-separated transfer methods (default: network,adain)")
    parser.add_argument("--size", type=int, default=512, help="output long side (default 512)")
    parser.add_argument("--images", type=int, default=48, help="photos per run (default 48)")
    parser.add_argument("--workers", default="1,2",
                        help="local engine worker counts (default 1,2)")
    parser.add_argument("--ray-workers", default="2",
                        help="Ray actor counts ('' for no Ray runs; default 2)")
    parser.add_argument("--model", default=None,
                        help="style network for `network` (default: the method's, painters)")
    parser.add_argument("--decoder", default=None,
                        help="relu4_1 decoder for adain (default: the method's, "
                             "models/decoder_relu4_1.safetensors)")
    parser.add_argument("--style", default=None,
                        help="style image for image-style methods (default: Starry Night)")
    parser.add_argument("-o", "--output", default="docs/benchmarks/batch.md",
                        help="markdown report (replaced)")
    parser.add_argument("--json", default="docs/benchmarks/batch.json", help="JSON results (replaced)")
    ns = parser.parse_args(argv)
    try:
        local = [int(s) for s in ns.workers.split(",") if s.strip()]
        ray_workers = [int(s) for s in ns.ray_workers.split(",") if s.strip()]
    except ValueError:
        raise RestyleError("--workers and --ray-workers take comma-separated whole numbers") \
            from None
    if ns.images < 1 or ns.size < 16:
        raise RestyleError("--images must be at least 1 and --size at least 16")
    style_image = ns.style or default_inputs()[1]
    imaging.load_image(style_image, "style image")
    model, decoder = ns.model, ns.decoder
    tmp = Path(tempfile.mkdtemp(prefix="restyle-bench-photos-"))
    try:
        make_photos(tmp, ns.images, ns.size)
        result = {"command": "restyle bench batch " + " ".join(argv or sys.argv[3:]),
                  "machine": machine_info(), "size": ns.size, "images": ns.images, "runs": []}
        for method in [m.strip() for m in ns.methods.split(",") if m.strip()]:
            params, style = {}, style_image
            if method == "network":
                if model:
                    params["model"] = model
                style = get_stylenet(model or installed_default()).styles[0]
            elif method in ("adain",) and decoder:
                params["decoder"] = decoder
            plan = [("local", w) for w in local] + [("ray", w) for w in ray_workers]
            for engine, workers in plan:
                print(f"{method}: {engine} engine, {workers} worker(s) ...", file=sys.stderr)
                r = _spawn("batch", {"method": method, "engine": engine, "workers": workers,
                                     "size": ns.size, "inputs": str(tmp), "style": style,
                                     "params": params})
                r["params"] = params
                result["runs"].append(r)
        result["ray_overhead"] = []
        for r in result["runs"]:
            if r["engine"] != "ray" or not r.get("steady_images_per_second"):
                continue
            same = next((x for x in result["runs"] if x["engine"] == "local"
                         and x["method"] == r["method"] and x.get("workers") == r["workers"]
                         and x.get("steady_images_per_second")), None)
            if same:
                result["ray_overhead"].append({
                    "method": r["method"], "workers": r["workers"],
                    "overhead": same["steady_images_per_second"] /
                    r["steady_images_per_second"] - 1})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(render(result))
    write_reports(Path(ns.output), render(result), Path(ns.json), result)
    return 0
