"""The anytime sheet: photos x budgets (one-pass start, 1, 3, 10, 30 s) next to Gatys's default.

    python scripts/make_anytime_sheet.py --outputs frontier-outputs [--pairs tubingen:starry_night]
        [--budgets 0,3,10,30,60]

Reads the images ``restyle bench frontier --outputs DIR`` wrote (the same runs as the
frontier's numbers, so the sheet shows what was scored) and writes docs/anytime_sheet.jpg,
each tile labelled with its seconds and its content / Gram distances.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from restyle import imaging

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = "0,1,3,10,30"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outputs", default="frontier-outputs")
    parser.add_argument("--json", default=str(ROOT / "docs" / "benchmarks" / "frontier.json"))
    parser.add_argument("--pairs", default="", help="CONTENT:STYLE,... (default: the first two "
                        "pairs of the frontier run with a Gatys result)")
    parser.add_argument("--budgets", default=BUDGETS, help="the anytime budgets shown, in "
                        f"seconds (default {BUDGETS})")
    parser.add_argument("--cell", type=int, default=256)
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "anytime_sheet.jpg"))
    ns = parser.parse_args()
    labels = [f"anytime-{float(b):g}s" for b in ns.budgets.split(",")] + ["gatys"]
    result = json.loads(Path(ns.json).read_text())
    rows = {(Path(p["content"]).stem, Path(p["style"]).stem): {r["label"]: r for r in p["rows"]}
            for p in result["pairs"]}
    wanted = [tuple(s.split(":")) for s in ns.pairs.split(",") if s] or \
        [k for k, v in rows.items() if "gatys" in v][:2]
    tiles = []
    for key in wanted:
        by = rows[key]
        for label in labels:
            r = by.get(label) or by.get(label.replace("-0s", "-0.1s"))
            if r is None:
                continue
            name = "gatys default" if label == "gatys" else f"budget {label[8:]}"
            tiles.append((f"{name}: {r['seconds']:.0f} s, c {r['content_distance']:.2f} "
                          f"g {r['gram_distance']:.3f}", imaging.load_image(r["output"])))
    sheet = imaging.labelled_grid(tiles, ns.cell, len(labels))
    sheet.save(ns.output, quality=85)
    print(f"wrote {ns.output} ({len(tiles)} tiles)")


if __name__ == "__main__":
    main()
