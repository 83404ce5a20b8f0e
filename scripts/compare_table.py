"""Per-style means of `restyle compare` metrics, method against method, as a markdown table.

    python scripts/compare_table.py RESULTS.json [RESULTS.json ...] --base gatys

Reads the results.json of one or more `restyle compare` runs (e.g. the optimization method
and a style network, run separately over the same contents and styles) and prints, for each
style and method, the mean Gram distance and content distance over the contents, with each
method's ratio to --base (the model card of a style network quotes this table).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

METRICS = ("gram_distance", "content_distance")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--base", default="gatys", help="method the ratios are taken against")
    ns = ap.parse_args(argv)
    values: dict = defaultdict(lambda: defaultdict(list))  # (style, method) -> metric -> values
    methods: list[str] = []
    for path in ns.results:
        for row in json.loads(Path(path).read_text())["rows"]:
            style = Path(row["style"]).stem
            for cell in row["results"]:
                if "metrics" not in cell:
                    continue
                if cell["method"] not in methods:
                    methods.append(cell["method"])
                for m in METRICS:
                    values[(style, cell["method"])][m].append(cell["metrics"][m])
    styles = sorted({s for s, _ in values})
    print("| style | method | photos | Gram distance ↓ | ratio to " + ns.base +
          " | content distance ↓ | ratio to " + ns.base + " |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for style in styles:
        base = values.get((style, ns.base))
        for method in methods:
            v = values.get((style, method))
            if not v:
                continue
            means = {m: sum(v[m]) / len(v[m]) for m in METRICS}
            ratios = {m: (f"{means[m] / (sum(base[m]) / len(base[m])):.2f}" if base else "-")
                      for m in METRICS}
            print(f"| {style} | {method} | {len(v[METRICS[0]])} | {means['gram_distance']:.4f} | "
                  f"{ratios['gram_distance']} | {means['content_distance']:.4f} | "
                  f"{ratios['content_distance']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
