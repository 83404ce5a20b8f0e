"""The portrait comparison sheet in docs/: photo, painting, Gatys and portrait side by side.

One row per painting of the portrait benchmark (scikit-image's astronaut with
Picasso's 1907 self-portrait and Matisse's Woman with a Hat), rendered at 512 px
with the benchmark's settings. The results are shared with
scripts/bench_portrait.py through its results folder: whatever is already there
is reused, the rest is computed. Needs restyle[portrait] and ../shared/data.

    OMP_NUM_THREADS=2 python scripts/make_portrait_sheet.py --out runs/portrait-bench
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SHEET = ROOT / "docs" / "portrait_sheet.jpg"
TILE = 512
LABEL = 28


def _bench():
    spec = importlib.util.spec_from_file_location("bench_portrait",
                                                  Path(__file__).with_name("bench_portrait.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fit(img: Image.Image) -> Image.Image:
    """``img`` scaled to fit a TILE x TILE cell, centred on white."""
    img = img.convert("RGB")
    img.thumbnail((TILE, TILE), Image.Resampling.LANCZOS)
    cell = Image.new("RGB", (TILE, TILE), "white")
    cell.paste(img, ((TILE - img.width) // 2, (TILE - img.height) // 2))
    return cell


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/portrait-bench", help="results folder (shared "
                        "with scripts/bench_portrait.py)")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--sheet", default=str(SHEET), help="where to write the sheet")
    ns = parser.parse_args(argv)
    from skimage import data

    bench = _bench()
    rows = bench.run_pairs(Path(ns.out), TILE, ns.iterations, ns.strength)
    photo = Image.fromarray(data.astronaut())
    titles = ["photo", "painting", "gatys", "portrait (Selim et al. 2016)"]
    sheet = Image.new("RGB", (4 * TILE, len(bench.PAINTINGS) * (TILE + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, painting in enumerate(bench.PAINTINGS):
        by_method = {r["method"]: r for r in rows if r["painting"] == painting}
        cells = [photo, Image.open(by_method["gatys"]["style"]),
                 Image.open(by_method["gatys"]["output"]),
                 Image.open(by_method["portrait"]["output"])]
        y = i * (TILE + LABEL)
        for j, (cell, title) in enumerate(zip(cells, titles)):
            sheet.paste(fit(cell), (j * TILE, y + LABEL))
            text = f"{title}: {painting}" if j == 1 else title
            draw.text((j * TILE + 8, y + 8), text, fill="black")
    path = Path(ns.sheet)
    path.parent.mkdir(parents=True, exist_ok=True)
    for quality in (88, 80, 72, 64):  # keep the sheet under 1 MB
        sheet.save(path, "JPEG", quality=quality, optimize=True)
        if path.stat().st_size < 1_000_000:
            break
    print(f"wrote {path} ({path.stat().st_size // 1024} KB, quality {quality})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
