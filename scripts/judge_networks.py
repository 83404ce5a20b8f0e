"""Style networks judged at the output scale: the six rival-sheet pairs at 512 and 1024 px.

    python scripts/judge_networks.py NAME=MODEL [NAME=MODEL ...] [--data ../shared/data]
        [--out DIR] [--gatys DIR]

Renders each photo of ``scripts/make_rival_sheet.py``'s pairs with its painting through each
network (``restyle.transfer(..., method="network", model=MODEL, size=S)``) at 512 and 1024 px,
scores them like ``restyle evaluate`` (Gram distance to the painting, content distance to the
photo, palette distance to the painting: sliced Wasserstein in CIELAB, a colour cast's
measure) and by their light-and-dark layout against the photo's (``tone``:
:func:`restyle.nets.train_style.tone_loss`) at 512 px and, for 1024 px outputs, at 1024 px too, and prints the means and the
per-pair values. ``--gatys DIR`` adds reference outputs named ``<photo>__<painting>.png``
(e.g. from ``restyle transfer photo painting --method gatys --size 512 --strength 0.05``),
scored at 512 px. Renders are kept in ``--out`` and reused. How models/painters.md's tables
were made; about four minutes a network on 2 cores.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import restyle  # noqa: E402
from make_rival_sheet import PAIRS  # noqa: E402
from restyle import imaging  # noqa: E402
from restyle.evaluate.metrics import score  # noqa: E402
from restyle.nets.train_style import tone_loss  # noqa: E402


def line(name: str, label: str, rows: list[tuple[float, float, float, float]]) -> str:
    gs, cs, ts, ps = ([r[k] for r in rows] for k in range(4))
    return (f"{name:14s} {label:22s} Gram {sum(gs) / len(gs):.4f} ("
            + " ".join(f"{g:.3f}" for g in gs) + f")  content {sum(cs) / len(cs):.3f} ("
            + " ".join(f"{c:.3f}" for c in cs) + f")  tone {sum(ts) / len(ts):.4f} ("
            + " ".join(f"{t:.3f}" for t in ts) + f")  palette {sum(ps) / len(ps):.2f} ("
            + " ".join(f"{p:.1f}" for p in ps) + ")")


def measure(output: Path, photo: Path, style: Path, size: int
            ) -> tuple[float, float, float, float]:
    m = score(output, photo, style, size=size)
    out = imaging.to_tensor(imaging.load_image(output))
    ref = imaging.resize_tensor(imaging.to_tensor(imaging.load_image(photo)), out.shape[-2:])
    if max(out.shape[-2:]) > size:
        side = imaging.fit_size(out.shape[-1], out.shape[-2], size)
        out, ref = (imaging.resize_tensor(t, (side[1], side[0])) for t in (out, ref))
    return (m["gram_distance"], m["content_distance"], float(tone_loss(out, ref)),
            m["palette_distance"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", metavar="NAME=MODEL")
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "data"))
    ap.add_argument("--out", default="judge_networks")
    ap.add_argument("--gatys", default=None, metavar="DIR")
    args = ap.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("pairs: " + ", ".join(f"{c} x {s}" for c, s in PAIRS))
    for spec in args.models:
        name, _, model = spec.partition("=")
        results: dict[str, list] = {}
        for size in (512, 1024):
            for photo_name, painting in PAIRS:
                photo = data / "content" / f"{photo_name}.jpg"
                style = data / "styles" / f"{painting}.jpg"
                f = out / f"{name}_{size}_{photo_name}.png"
                if not f.exists():
                    restyle.transfer(imaging.load_image(photo), painting, method="network",
                                     size=size, model=model or None).save(f)
                for at in ((512,) if size == 512 else (512, 1024)):
                    results.setdefault(f"{size} px, scored at {at}", []).append(
                        measure(f, photo, style, at))
        for label, rows in results.items():
            print(line(name, label, rows), flush=True)
    if args.gatys:
        rows = []
        for photo_name, painting in PAIRS:
            f = Path(args.gatys) / f"{photo_name}__{painting}.png"
            if f.exists():
                rows.append(measure(f, data / "content" / f"{photo_name}.jpg",
                                    data / "styles" / f"{painting}.jpg", 512))
        if rows:
            print(line("reference", f"{len(rows)} pairs, at 512", rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
