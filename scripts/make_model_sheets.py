"""The contact sheets of docs/models.md: the shipped networks and decoders at work.

    python scripts/make_model_sheets.py [--data ../shared/data] [--docs docs]

Writes docs/painters_tubingen.jpg and docs/painters_chicago.jpg (every style of the
`painters` network), docs/painters_blends.jpg (two-style blends), docs/one_pass.jpg
(AdaIN, adain-lite, WCT, style-swap and the network on the shared photos) and
docs/adain_lite_unseen.jpg (adain-lite and AdaIN with paintings neither was trained on:
Monet and Renoir from the shared semantic/ folder) and docs/painters_fast.jpg (the six
rival-sheet pairs through `painters` and its distilled student `painters_fast`). About two
minutes on 2 cores; ``--only painters_fast`` writes just that sheet.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import restyle
from restyle import imaging

ROOT = Path(__file__).resolve().parents[1]


def save(sheet, path: Path) -> None:
    sheet.save(path, quality=85, optimize=True)
    print(f"wrote {path}")


def fast_sheet(data: Path, docs: Path, size: int) -> None:
    """The six rival-sheet pairs: photo, painting, `painters`, `painters_fast`."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_rival_sheet import PAIRS
    tiles = []
    for name, style in PAIRS:
        photo = data / "content" / f"{name}.jpg"
        tiles += [(name, imaging.load_image(photo)),
                  (style, imaging.load_image(data / "styles" / f"{style}.jpg"))]
        tiles += [(model, restyle.transfer(photo, style, method="network", model=model,
                                           size=size)) for model in ("painters", "painters_fast")]
    save(imaging.labelled_grid(tiles, size, 4), docs / "painters_fast.jpg")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "data"))
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--only", choices=("painters_fast",), help="write only this sheet")
    ns = ap.parse_args(argv)
    data, docs, size = Path(ns.data), Path(ns.docs), ns.size
    fast_sheet(data, docs, size)
    if ns.only:
        return 0
    photo = {n: data / "content" / f"{n}.jpg" for n in ("tubingen", "chicago", "cornell",
                                                           "hoover_tower_night")}
    styles = data / "styles"
    for name in ("tubingen", "chicago"):
        save(restyle.style_sheet(photo[name], size=size, columns=4), docs / f"painters_{name}.jpg")

    blends = [("photo", imaging.load_image(photo["cornell"]))]
    for a, b in (("starry_night", "udnie"), ("woman_with_a_hat", "picasso_self_portrait_1907")):
        for w in (1.0, 0.75, 0.5, 0.25, 0.0):
            spec = f"{a}:{w},{b}:{1 - w}"
            short_a, short_b = a.split("_")[0], b.split("_")[0]
            label = a if w == 1 else b if w == 0 else f"{short_a} {w:g} + {short_b} {1 - w:g}"
            blends.append((label, restyle.transfer(photo["cornell"], spec, method="network",
                                                   size=size)))
    blends.insert(6, ("photo", blends[0][1]))
    save(imaging.labelled_grid(blends, size, 6), docs / "painters_blends.jpg")

    tiles = []
    for name, style in (("tubingen", "starry_night"), ("chicago", "woman_with_a_hat"),
                        ("hoover_tower_night", "udnie")):
        tiles.append((f"{name} / {style}", imaging.load_image(photo[name])))
        for method in ("adain", "adain-lite", "wct", "style-swap"):
            tiles.append((method, restyle.transfer(photo[name], styles / f"{style}.jpg",
                                                   method=method, size=size)))
        tiles.append(("network painters", restyle.transfer(photo[name], style, method="network",
                                                           size=size)))
    save(imaging.labelled_grid(tiles, size, 6), docs / "one_pass.jpg")

    unseen = []
    for name, painting in (("cornell", "monet"), ("modern", "renoir"), ("tubingen", "monet")):
        style = data / "semantic" / f"{painting}.jpg"
        unseen += [(name, imaging.load_image(photo.get(name, data / "content" / f"{name}.jpg"))),
                   (f"{painting} (not trained on)", imaging.load_image(style))]
        unseen += [(method, restyle.transfer(data / "content" / f"{name}.jpg", style,
                                             method=method, size=size))
                   for method in ("adain-lite", "adain")]
    save(imaging.labelled_grid(unseen, size, 4), docs / "adain_lite_unseen.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
