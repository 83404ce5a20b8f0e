"""Face integrity and style distance of the portrait method against plain Gatys.

For each painting, scikit-image's astronaut photo is stylised with ``--method
gatys`` and ``--method portrait`` at the same size, iterations and style
strength. For every output it reports

* whether dlib still finds the face, and the mean displacement of its 68
  landmarks from the photo's, as a fraction of the inter-ocular distance
  (restyle/evaluate/faces.py);
* the style distance of ``restyle evaluate`` (mean relative Gram distance over
  relu1_1..relu5_1, restyle.evaluate.metrics.gram_distance) to the painting;
* the wall time of the transfer.

Outputs are kept in --out (a result already there with the same settings is
reused, so the sheet script can share them) with a JSON summary. Needs
restyle[portrait] and ../shared/data/styles. Run from the repository root:

    OMP_NUM_THREADS=2 python scripts/bench_portrait.py --out runs/portrait-bench
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STYLES = ROOT.parent / "shared" / "data" / "styles"
PAINTINGS = ("picasso_self_portrait_1907", "woman_with_a_hat")
METHODS = ("gatys", "portrait")


def result_path(out: Path, painting: str, method: str, size: int, iterations: int,
                strength: float) -> Path:
    return out / f"{painting}_{method}_s{size}_i{iterations}_k{strength:g}.png"


def run_pairs(out: Path, size: int, iterations: int, strength: float, echo=print,
              paintings=PAINTINGS, methods=METHODS) -> list[dict]:
    """Stylise the astronaut with every painting and method (reusing earlier results);
    returns one row per (painting, method) with paths and timings."""
    from skimage import data

    import restyle

    out.mkdir(parents=True, exist_ok=True)
    photo = data.astronaut()
    rows = []
    for painting in paintings:
        style = STYLES / f"{painting}.jpg"
        if not style.exists():
            raise SystemExit(f"missing {style}: the shared data is needed")
        for method in methods:
            path = result_path(out, painting, method, size, iterations, strength)
            seconds = None
            meta = path.with_suffix(".json")
            if path.exists() and meta.exists():
                seconds = json.loads(meta.read_text())["seconds"]
                echo(f"reusing {path.name}")
            else:
                echo(f"{method} x {painting} at {size} px, {iterations} iterations ...")
                start = time.perf_counter()
                restyle.transfer(photo, style, method=method, size=size, iterations=iterations,
                                 strength=strength, output=path, overwrite=True)
                seconds = time.perf_counter() - start
                meta.write_text(json.dumps({"seconds": seconds}))
                echo(f"  {seconds:.0f} s -> {path}")
            rows.append({"painting": painting, "method": method, "output": str(path),
                         "style": str(style), "seconds": seconds})
    return rows


def measure(rows: list[dict]) -> list[dict]:
    from skimage import data

    from restyle import imaging
    from restyle.evaluate.faces import face_integrity, photo_face_at
    from restyle.evaluate.metrics import _load, gram_distance

    photo = imaging.load_image(data.astronaut())
    for r in rows:
        out = imaging.load_image(r["output"])
        face = photo_face_at(photo, out.size)
        fi = face_integrity(imaging.to_tensor(out), face)
        r.update(face_found=fi.found, displacement=fi.displacement, worst=fi.worst,
                 gram_distance=gram_distance(_load(r["output"], "output image", 512),
                                             _load(r["style"], "style image", 512))["mean"])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/portrait-bench", help="results folder")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=50,
                        help="iterations at the final size (twice as many at 256 px)")
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--only", default="", metavar="PAINTING:METHOD",
                        help="compute just this one result (to spread the runs over several "
                             "processes), without measuring")
    ns = parser.parse_args(argv)
    out = Path(ns.out)
    if ns.only:
        painting, _, method = ns.only.partition(":")
        run_pairs(out, ns.size, ns.iterations, ns.strength, paintings=(painting,),
                  methods=(method,))
        return 0
    rows = measure(run_pairs(out, ns.size, ns.iterations, ns.strength))
    print(f"\nastronaut photo, {ns.size} px, {ns.iterations} iterations at the final size, "
          f"strength {ns.strength}\n")
    print("| painting | method | face found | landmark displacement (x IOD) | worst landmark "
          "| style distance (Gram) | time |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['painting']} | {r['method']} | {'yes' if r['face_found'] else 'no'} "
              f"| {r['displacement']:.3f} | {r['worst']:.3f} | {r['gram_distance']:.4f} "
              f"| {r['seconds']:.0f} s |")
    for painting in PAINTINGS:
        g, p = [next(r for r in rows if r["painting"] == painting and r["method"] == m)
                for m in METHODS]
        print(f"\n{painting}: displacement portrait/gatys = "
              f"{p['displacement'] / g['displacement']:.2f} (goal <= 0.5), style distance "
              f"portrait/gatys = {p['gram_distance'] / g['gram_distance']:.2f} (goal <= 1.25)")
    summary = out / f"summary_s{ns.size}_i{ns.iterations}_k{ns.strength:g}.json"
    summary.write_text(json.dumps({"size": ns.size, "iterations": ns.iterations,
                                   "strength": ns.strength, "rows": rows}, indent=2))
    print(f"\nwrote {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
