"""The --auto evaluation in docs/auto-tuning.md: defaults against auto per pair.

Pairs where the defaults are known to fail (a face and fine structure that the
default strength over-stylises; photos with large flat areas), plus the classic
Tubingen / Starry Night as a control. Each pair is rendered with Gatys at the
defaults and with ``auto=True`` at the same size and iterations, and scored with
restyle's metrics (restyle.evaluate.metrics at the output size). Results (images
and one JSON line per run) are kept in --out, so an interrupted run resumes; the
table is printed as Markdown and the contact sheet written to docs/auto_sheet.jpg.
Needs ../shared/data.

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/eval_auto.py --out runs/auto-eval \
        --size 256 --iterations 50
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = next((d for d in (ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data")
             if d.is_dir()), ROOT.parent / "shared" / "data")  # a checkout or a worktree
SHEET = ROOT / "docs" / "auto_sheet.jpg"
METRICS = ("content_distance", "ssim_luminance", "edge_similarity", "gram_distance")


def _skimage(name: str, columns: int = 0) -> Image.Image:
    from skimage import data
    arr = getattr(data, name)()
    if columns:
        arr = arr[:, :columns]
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    return Image.fromarray(arr)


#: name -> (content, style file, why the defaults fail)
PAIRS = {
    "astronaut-hat": (lambda: _skimage("astronaut"), "woman_with_a_hat.jpg", "face"),
    "astronaut-picasso": (lambda: _skimage("astronaut"), "picasso_self_portrait_1907.jpg",
                          "face"),
    "text-starry": (lambda: _skimage("text", 224), "starry_night.jpg", "fine structure"),
    "coins-udnie": (lambda: _skimage("coins"), "udnie.jpg", "fine structure"),
    "camera-starry": (lambda: _skimage("camera"), "starry_night.jpg", "flat sky"),
    "hoover-shipwreck": (lambda: Image.open(DATA / "content" / "hoover_tower_night.jpg"),
                         "shipwreck_of_the_minotaur.jpg", "flat sky"),
    "tubingen-starry": (lambda: Image.open(DATA / "content" / "tubingen.jpg"),
                        "starry_night.jpg", "control"),
}


def run_pair(out: Path, name: str, size: int, iterations: int) -> list[dict]:
    import restyle
    from restyle import imaging
    from restyle.evaluate import metrics

    content_fn, style_file, kind = PAIRS[name]
    content = content_fn().convert("RGB")
    content = imaging.resize(content, imaging.fit_size(*content.size, size))
    style = Image.open(DATA / "styles" / style_file).convert("RGB")
    rows = []
    for mode in ("default", "auto"):
        record = out / f"{name}-{mode}.json"
        if record.exists():
            rows.append(json.loads(record.read_text()))
            continue
        start = time.perf_counter()
        image = restyle.transfer(content, style, size=size, iterations=iterations,
                                 auto=mode == "auto")
        seconds = time.perf_counter() - start
        image.save(out / f"{name}-{mode}.png")
        scores = metrics.score(image, content, style, size=size, names=METRICS)
        row = {"pair": name, "kind": kind, "mode": mode, "seconds": round(seconds, 1),
               "auto": image.info.get("auto"),
               **{k: round(v, 4) for k, v in scores.items() if "/" not in k}}
        record.write_text(json.dumps(row))
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def describe(auto: dict) -> str:
    c = auto["chosen"]
    layers = "normalised" if ":" in c.get("style_layers", "") else "default"
    return (f"s {c.get('strength')}, scale {c.get('style_scale')}, tv {c.get('tv_weight')}, "
            f"layers {layers}")


def add_face_integrity(out: Path, rows: list[dict]) -> None:
    """For the face pairs: dlib's landmarks on each output against the photo's (mean
    displacement as a fraction of the inter-ocular distance; needs restyle[portrait])."""
    from restyle import imaging
    from restyle.evaluate.faces import face_integrity, photo_face_at
    for r in rows:
        if r["kind"] != "face":
            continue
        image = Image.open(out / f"{r['pair']}-{r['mode']}.png").convert("RGB")
        photo = PAIRS[r["pair"]][0]().convert("RGB")
        fi = face_integrity(imaging.to_tensor(image), photo_face_at(photo, image.size))
        r["face"] = f"{fi.displacement:.3f}" if fi.found else "not found"


def table(rows: list[dict]) -> str:
    lines = ["| pair | fails by | run | strength | content dist ↓ | SSIM ↑ | edges ↑ | "
             "Gram dist ↓ | face: landmark shift (x IOD) ↓ | time (s) | of which tuning (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        auto = r.get("auto")
        tuning = f"{auto['seconds']:.0f}" if auto else "-"
        chosen = describe(auto) if auto else "0.5 (default)"
        lines.append(f"| {r['pair']} | {r['kind']} | {r['mode']} | {chosen} | "
                     f"{r['content_distance']:.3f} | {r['ssim_luminance']:.3f} | "
                     f"{r['edge_similarity']:.3f} | {r['gram_distance']:.4f} | "
                     f"{r.get('face', '-')} | {r['seconds']:.0f} | {tuning} |")
    return "\n".join(lines)


def sheet(out: Path, rows: list[dict], path: Path, cell: int = 256) -> None:
    from restyle import imaging
    tiles = []
    by_pair: dict[str, dict] = {}
    for r in rows:
        by_pair.setdefault(r["pair"], {})[r["mode"]] = r
    for name, modes in by_pair.items():
        content = PAIRS[name][0]().convert("RGB")
        style = Image.open(DATA / "styles" / PAIRS[name][1]).convert("RGB")
        tiles += [(name, content), ("style", style),
                  ("default (strength 0.5)", Image.open(out / f"{name}-default.png"))]
        if "auto" in modes:
            c = modes["auto"]["auto"]["chosen"]
            label = (f"auto: s {c['strength']}, scale {c['style_scale']:g}, tv {c['tv_weight']:g}"
                     + (", norm." if ":" in c["style_layers"] else ""))
            tiles.append((label, Image.open(out / f"{name}-auto.png")))
    grid = imaging.labelled_grid(tiles, cell, 4)
    grid.save(path, quality=85)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/auto-eval")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--pairs", default=",".join(PAIRS))
    parser.add_argument("--sheet", default=str(SHEET))
    ns = parser.parse_args(argv)
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in ns.pairs.split(","):
        rows += run_pair(out, name, ns.size, ns.iterations)
    add_face_integrity(out, rows)
    print(table(rows))
    sheet(out, rows, Path(ns.sheet))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
