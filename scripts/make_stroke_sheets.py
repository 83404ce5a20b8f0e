"""The contact sheets of docs/stroke-control.md: stroke orientation and stroke size.

    python scripts/make_stroke_sheets.py [--data ../shared/data] [--docs docs] [--gatys]

Writes docs/stroke_orientation.jpg (adain-lite and WCT at 384 px, and with --gatys Gatys
at 256 px / 60 iterations: no control, --stroke-angle 0 / 90, --stroke-field etf, labelled
with the aligned share (no control: against 0 / 90 degrees), and the photo's ETF drawn in
the field encoding) and docs/stroke_size.jpg (the same
384 px window of 1024 px outputs of adain-lite and the painters network at --stroke-size
0.5 / 1 / 2 / 4, and of 4096 px outputs without and with --stroke-size 1).
Each tile is labelled with its stroke metric (aligned share, or wavelength in px).
``--reuse DIR`` takes the outputs a measurement run saved there with the same settings,
as ``size_{method}_{size}_{photo}_{S}.jpg`` and ``o_{method}_{photo}_{none|0|90|etf}.png``
(the 4096 px and Gatys runs take minutes each).
Several minutes on 2 cores (the 4096 px runs and Gatys dominate).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import restyle
from restyle import imaging, stroke
from restyle.evaluate import metrics

ROOT = Path(__file__).resolve().parents[1]


def save(sheet, path: Path) -> None:
    sheet.save(path, quality=85, optimize=True)
    print(f"wrote {path}")


def orientation_sheet(photo: Path, style: Path, gatys: bool, reuse: Path | None):
    img = imaging.load_image(photo)
    tiles = []
    runs = [("adain-lite", 384, {}), ("wct", 384, {})]
    if gatys:
        runs.append(("gatys", 256, dict(iterations=60, min_size=0)))
    for method, size, extra in runs:
        ref = imaging.to_tensor(imaging.resize(img, imaging.fit_size(*img.size, size)))
        field = stroke.stroke_field("etf", ref)
        for key, label, kw, target in (("none", "none", {}, None),
                                       ("0", "angle 0", dict(stroke_angle="0"), 0.0),
                                       ("90", "angle 90", dict(stroke_angle="90"), 90.0),
                                       ("etf", "field etf", dict(stroke_field="etf"), field)):
            saved = reuse / f"o_{method}_{photo.stem}_{key}.png" if reuse else None
            out = (imaging.load_image(saved) if saved is not None and saved.exists() else
                   restyle.transfer(photo, style, method=method, size=size, **extra, **kw))
            x = imaging.to_tensor(out)
            if target is None:
                note = f"{metrics.stroke_alignment(x, 0):.2f} / {metrics.stroke_alignment(x, 90):.2f}"
            else:
                note = f"{metrics.stroke_alignment(x, target):.2f}"
            tiles.append((f"{method} {label}: {note}", out))
    angle, conf = stroke.etf(imaging.to_tensor(imaging.resize(img, imaging.fit_size(*img.size,
                                                                                   384))))
    tiles += [("photo", imaging.resize(img, imaging.fit_size(*img.size, 384))),
              ("its ETF (field colours)", imaging.to_pil(stroke.field_image(angle, conf)))]
    return imaging.labelled_grid(tiles, 320, 4)


def size_sheet(photo: Path, style: Path, network_style: str, reuse: Path | None):
    img = imaging.load_image(photo)
    tiles = []

    def run(method, st, size, s):
        """The output, or the one a measurement run saved as
        ``size_{method}_{size}_{photo}_{s}.jpg`` in ``reuse`` (same call, same settings)."""
        saved = reuse / f"size_{method}_{size}_{photo.stem}_{float(s)}.jpg" if reuse else None
        if saved is not None and saved.exists():
            return imaging.load_image(saved)
        return restyle.transfer(photo, st, method=method, size=size, stroke_size=s)

    def window(out, side):
        w, h = out.size
        k = w / 1024  # the same part of the picture at any output size
        box = (int(380 * k), int(60 * k), int((380 + side) * k), int((60 + side * 0.75) * k))
        return out.crop(box)

    for method, st in (("adain-lite", style), ("network", network_style)):
        for s in (0.5, 1, 2, 4):
            out = run(method, st, 1024, s)
            wave = metrics.stroke_wavelength(imaging.to_tensor(out), imaging.to_tensor(
                imaging.resize(img, out.size)))["pixels"]
            tiles.append((f"{method} 1024, S={s:g}: {wave:.1f} px", window(out, 384)))
    for method, st in (("adain-lite", style), ("network", network_style)):
        for s in (0, 1):
            out = run(method, st, 4096, s)
            wave = metrics.stroke_wavelength(imaging.to_tensor(out), imaging.to_tensor(
                imaging.resize(img, out.size)))["pixels"]
            label = "default" if not s else f"S={s:g}"
            tiles.append((f"{method} 4096, {label}: {wave:.0f} px", window(out, 384)))
    return imaging.labelled_grid(tiles, 300, 4)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "data"))
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    ap.add_argument("--gatys", action="store_true", help="add a Gatys row (slow)")
    ap.add_argument("--only", choices=("orientation", "size"), default=None)
    ap.add_argument("--reuse", default=None, metavar="DIR",
                    help="take the stroke-size outputs a measurement run saved there")
    ns = ap.parse_args(argv)
    data, docs = Path(ns.data), Path(ns.docs)
    photo = data / "content" / "tubingen.jpg"
    style = data / "styles" / "starry_night.jpg"
    if ns.only != "size":
        save(orientation_sheet(photo, style, ns.gatys, Path(ns.reuse) if ns.reuse else None),
             docs / "stroke_orientation.jpg")
    if ns.only != "orientation":
        save(size_sheet(photo, style, "starry_night", Path(ns.reuse) if ns.reuse else None),
             docs / "stroke_size.jpg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
