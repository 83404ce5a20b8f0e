"""The optimization-family contact sheet in docs/: every pixel-optimization method once.

Renders each method of the optimization family once on ../shared/data (and
scikit-image's astronaut), through the public Python API (restyle.transfer,
texture, dream, doodle, analogy), at small sizes (256-384 px) so that the whole
sheet costs about 9 CPU-minutes (one thread):

- Gatys transfer (Tubingen x The Starry Night) with three style losses: gram,
  meanstd, sliced;
- spatial control: two styles (Van Gogh for the sky, Picasso 1909 for the city) by
  region masks made from a photo's segmentation;
- MRF (CNNMRF): Tubingen x The Starry Night at its default 384 px;
- neural doodle: Monet's painting and map, painted onto the coastline map (384 px);
- deep image analogy: the astronaut (head and shoulders) and Picasso's 1907
  self-portrait (A' and B);
- Deep Dream on a photo;
- texture synthesis: Gatys (CNN) and Portilla-Simoncelli from the same exemplar.

Each render is cached in the output folder as NAME-HASH.png with NAME-HASH.json (settings,
wall and CPU seconds); a rerun renders only what is missing (a render whose settings
changed gets a new file name), then composes the labelled JPEG sheet.

    OMP_NUM_THREADS=1 python scripts/make_family_sheet.py --out /tmp/family \\
        --sheet docs/optimization-family.jpg

Needs restyle[ps] (plenoptic) for the Portilla-Simoncelli texture.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SHEET = ROOT / "docs" / "optimization-family.jpg"

WIDTH = 1600        # sheet width
OUT_H = 232         # height of an output image on the sheet
IN_W = 104          # width of the column of small input images
GAP = 10
FONT_SIZE = 13
LINE = FONT_SIZE + 4


# ---------------------------------------------------------------- inputs

def data(path: str) -> Path:
    return DATA / path


def prepare_inputs(out: Path) -> dict[str, Path]:
    """Derived inputs, written to the output folder (never to the repository): the
    region masks of photo_in3 from its segmentation, the texture exemplar, the
    astronaut photo."""
    from skimage import data as skdata

    made = {}
    seg = np.asarray(Image.open(data("semantic/photo_in3_content_seg.png")).convert("L"))
    city = seg > 127
    for name, m in (("sky", ~city), ("city", city)):
        p = out / f"input_in3_{name}_mask.png"
        if not p.exists():
            Image.fromarray((m * 255).astype(np.uint8)).save(p)
        made[name] = p
    # the astronaut's head and shoulders, framed like the self-portrait it is paired with
    # (deep image analogy matches semantically: the whole photo, with flag and shuttle,
    # gets faces pasted over the background)
    p = out / "input_astronaut_head.png"
    if not p.exists():
        Image.fromarray(skdata.astronaut()).crop((110, 0, 390, 360)).save(p)
    made["astronaut"] = p
    # texture exemplar: the swirling sky of The Starry Night, 320 px wide, so that the
    # swirls are about as large as the textures' largest captured structures
    p = out / "input_starry_sky.png"
    if not p.exists():
        img = Image.open(data("styles/starry_night.jpg")).convert("RGB")
        w, h = img.size
        crop = img.crop((int(0.2 * w), 0, int(0.8 * w), int(0.45 * h)))
        crop.resize((320, round(320 * crop.height / crop.width)), Image.Resampling.LANCZOS).save(p)
    made["exemplar"] = p
    return made


# ---------------------------------------------------------------- renders

@dataclass
class Render:
    name: str               # file stem in the output folder
    title: str              # first label line
    settings: str           # second label line
    call: Callable          # (params) -> PIL image or tuple of them
    params: dict
    inputs: list = field(default_factory=list)   # (label, path) shown small beside it
    outputs: int = 1
    output_titles: tuple = ()

    def key(self) -> str:
        text = json.dumps(self.params, sort_keys=True, default=str)
        return f"{self.name}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def renders(inp: dict[str, Path]) -> list[list[Render]]:
    """The sheet's panels: each a list of renders sharing the same inputs."""
    import restyle

    tub, starry = data("content/tubingen.jpg"), data("styles/starry_night.jpg")

    def gatys(**params):
        return lambda: restyle.transfer(tub, starry, **params)

    losses = [
        Render(f"gatys-{loss}", f"Gatys, --style-loss {loss}", f"256 px, {it} it., strength 0.5",
               gatys(size=256, iterations=it, style_loss=loss),
               dict(size=256, iterations=it, style_loss=loss),
               inputs=[("tubingen", tub), ("starry_night", starry)])
        for loss, it in (("gram", 150), ("meanstd", 150), ("sliced", 100))]

    in3 = data("semantic/photo_in3_content.png")
    nude = data("styles/seated_nude.jpg")
    masks = f"{inp['sky']},{inp['city']}"
    masked = [Render("masks-two-styles", "Gatys, two styles by --masks",
                     "sky: Van Gogh, city: Picasso; 256 px, str. 0.4",
                     lambda: restyle.transfer(in3, [starry, nude], size=256, masks=masks,
                                              strength=0.4),
                     dict(size=256, masks="sky,city", styles="starry_night,seated_nude",
                          strength=0.4),
                     inputs=[("photo_in3", in3), ("sky mask", inp["sky"]),
                             ("sky style", starry), ("city style", nude)])]

    mrf = [Render("mrf-tubingen", "MRF (CNNMRF), --method mrf", "384 px, defaults",
                  lambda: restyle.transfer(tub, starry, method="mrf", size=384),
                  dict(method="mrf", size=384),
                  inputs=[("tubingen", tub), ("starry_night", starry)])]

    monet, monet_sem = data("semantic/monet.jpg"), data("semantic/monet_sem.png")
    coast = data("semantic/coastline_sem.png")
    doodle = [Render("doodle-monet-coastline", "neural doodle (restyle doodle)",
                     "Monet onto coastline map; 384 px",
                     lambda: restyle.doodle(monet, style_map=monet_sem, target_map=coast,
                                            size=384),
                     dict(size=384),
                     inputs=[("monet", monet), ("monet map", monet_sem),
                             ("target map", coast)])]

    picasso = data("styles/picasso_self_portrait_1907.jpg")
    analogy = [Render("analogy-astronaut-picasso", "deep image analogy", "256 px, defaults",
                      lambda: restyle.analogy(inp["astronaut"], picasso, size=256),
                      dict(size=256, a="astronaut head"),
                      inputs=[("A: astronaut", inp["astronaut"]), ("B': Picasso 1907", picasso)],
                      outputs=2, output_titles=("A'", "B"))]

    dream = [Render("dream-tubingen", "Deep Dream (restyle dream)",
                    "relu4_3, 4 octaves x 10 steps; 384 px",
                    lambda: restyle.dream(tub, size=384), dict(size=384),
                    inputs=[("tubingen", tub)])]

    ex = inp["exemplar"]
    textures = [
        Render("texture-gatys", "texture, Gatys 2015 (CNN)", "192x192, defaults",
               lambda: restyle.texture(ex, size="192x192"), dict(size="192x192"),
               inputs=[("exemplar", ex)]),
        Render("texture-ps", "texture, Portilla-Simoncelli", "192x192, 300 evaluations",
               lambda: restyle.texture(ex, method="portilla-simoncelli", size="192x192",
                                       iterations=300),
               dict(method="portilla-simoncelli", size="192x192", iterations=300)),
    ]
    return [losses, masked, mrf, doodle, analogy, dream, textures]


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def render(r: Render, out: Path) -> dict:
    """Run ``r`` unless its outputs are cached; return its record."""
    key = r.key()
    meta = out / f"{key}.json"
    paths = [out / f"{key}{'' if i == 0 else f'-{i}'}.png" for i in range(r.outputs)]
    if meta.exists() and all(p.exists() for p in paths):
        return json.loads(meta.read_text())
    print(f"rendering {key} ...", flush=True)
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = r.call()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    images = result if isinstance(result, tuple) else (result,)
    for img, p in zip(images, paths):
        img.save(p)
    record = dict(name=r.name, key=key, title=r.title, settings=r.settings, params=r.params,
                  outputs=[p.name for p in paths], size=list(images[0].size),
                  wall_s=round(wall, 1), cpu_s=round(cpu, 1))
    meta.write_text(json.dumps(record, indent=1, default=str))
    print(f"  {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    return record


# ---------------------------------------------------------------- sheet

NOTE = [
    "Small images: the inputs of the result(s) beside them.",
    "Under each result: method, settings, and its time:",
    "CPU seconds of the render (one thread, OMP_NUM_THREADS=1,",
    "bfloat16 autocast), then wall-clock seconds on the",
    "development machine (2 cores shared with two trainings",
    "at higher priority: wall times are not comparable).",
    "All sizes are the long side of the output.",
    "Details and the table of timings: docs/optimization-family.md",
]

def font(size: int, bold: bool = False):
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu",
                   "/usr/share/fonts/TTF"):
        try:
            return ImageFont.truetype(str(Path(folder) / name), size)
        except OSError:
            continue
    return ImageFont.load_default()


def scaled(img: Image.Image, height: int) -> Image.Image:
    img = img.convert("RGB")
    return img.resize((max(1, round(img.width * height / img.height)), height),
                      Image.Resampling.LANCZOS)


def panel(group: list[Render], records: list[dict], out: Path) -> Image.Image:
    """Small inputs in a column on the left, outputs at OUT_H with three label lines."""
    f_small, f, f_bold = font(11), font(FONT_SIZE), font(FONT_SIZE, bold=True)
    inputs = list({str(path): (label, path) for r in group for label, path in r.inputs}.values())
    outputs = []
    for r, rec in zip(group, records):
        for i, name in enumerate(rec["outputs"]):
            title = r.title if not r.output_titles else f"{r.title}: {r.output_titles[i]}"
            secs = f"{rec['cpu_s']:.0f} s CPU ({rec['wall_s']:.0f} s wall)"
            if i:
                secs = "(same run)"
            outputs.append((scaled(Image.open(out / name), OUT_H), title, r.settings, secs))
    label_h = 3 * LINE + 4
    height = OUT_H + label_h
    # the input column: thumbnails sharing the height, each with its caption
    n = len(inputs)
    cell_h = (height - 2) // max(n, 1)
    in_w = IN_W if n else 0
    width = in_w + sum(GAP + o[0].width for o in outputs)
    # outputs too wide for their text: widen the cell
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    cells = []
    for img, title, settings, secs in outputs:
        text_w = max(draw_probe.textlength(title, font=f_bold),
                     draw_probe.textlength(settings, font=f), draw_probe.textlength(secs, font=f))
        cells.append(max(img.width, int(text_w) + 4))
    width = in_w + sum(GAP + c for c in cells)
    im = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(im)
    for k, (label, path) in enumerate(inputs):
        thumb = Image.open(path).convert("RGB")
        thumb.thumbnail((IN_W - 4, cell_h - 14), Image.Resampling.LANCZOS)
        y = k * cell_h
        im.paste(thumb, (0, y))
        d.text((0, y + thumb.height), label, fill=(60, 60, 60), font=f_small)
    x = in_w
    for (img, title, settings, secs), cw in zip(outputs, cells):
        x += GAP
        im.paste(img, (x, 0))
        y = OUT_H + 3
        d.text((x, y), title, fill="black", font=f_bold)
        d.text((x, y + LINE), settings, fill=(40, 40, 40), font=f)
        d.text((x, y + 2 * LINE), secs, fill=(90, 90, 90), font=f)
        x += cw
    return im


def compose(panels: list[Image.Image], title: str, note: list[str]) -> Image.Image:
    """Pack the panels left to right into rows of WIDTH, a separator between panels;
    ``note`` (lines of text) goes into the room left at the end of the last row."""
    rows, row, w = [], [], 0
    for p in panels:
        if row and w + 2 * GAP + p.width > WIDTH:
            rows.append(row)
            row, w = [], 0
        row.append(p)
        w += p.width + (2 * GAP if len(row) > 1 else 0)
    rows.append(row)
    head = 34
    height = head + sum(max(p.height for p in r) + 2 * GAP for r in rows)
    sheet = Image.new("RGB", (WIDTH, height), "white")
    d = ImageDraw.Draw(sheet)
    d.text((GAP, 8), title, fill="black", font=font(17, bold=True))
    y = head
    for r in rows:
        x = GAP
        for i, p in enumerate(r):
            if i:
                d.line([(x + GAP - 1, y), (x + GAP - 1, y + p.height)], fill=(200, 200, 200))
                x += 2 * GAP
            sheet.paste(p, (x, y))
            x += p.width
        if r is rows[-1] and note:
            f = font(FONT_SIZE)
            for k, line in enumerate(note):
                d.text((x + 3 * GAP, y + k * LINE), line, fill=(60, 60, 60), font=f)
        y += max(p.height for p in r) + GAP
        d.line([(GAP, y), (WIDTH - GAP, y)], fill=(200, 200, 200))
        y += GAP
    return sheet


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/family", help="folder caching the renders")
    parser.add_argument("--sheet", default=str(SHEET), help="where to write the sheet (JPEG)")
    parser.add_argument("--only", default="", help="render only these (comma-separated names, "
                        "e.g. gatys-gram), no sheet")
    parser.add_argument("--list", action="store_true", help="list the renders and their cache "
                        "state, render nothing")
    ns = parser.parse_args(argv)
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    groups = renders(prepare_inputs(out))
    only = {s for s in ns.only.split(",") if s}
    if ns.list:
        for g in groups:
            for r in g:
                cached = (out / f"{r.key()}.json").exists()
                print(f"{r.name:28s} {'cached' if cached else 'missing'}  {r.key()}")
        return 0
    records = []
    for g in groups:
        records.append([render(r, out) for r in g if not only or r.name in only])
    if only:
        return 0
    rows = [panel(g, rec, out) for g, rec in zip(groups, records)]
    sheet = compose(rows, "restyle: the optimization family on the shared data "
                    "(scripts/make_family_sheet.py)", NOTE)
    path = Path(ns.sheet)
    path.parent.mkdir(parents=True, exist_ok=True)
    for quality in (85, 80, 72, 64):  # keep the sheet under 1 MB
        sheet.save(path, "JPEG", quality=quality, optimize=True)
        if path.stat().st_size < 1_000_000:
            break
    print(f"wrote {path} ({sheet.width}x{sheet.height}, {path.stat().st_size // 1024} KB, "
          f"quality {quality})")
    total = sum(rec["cpu_s"] for g in records for rec in g)
    for g in records:
        for rec in g:
            print(f"| {rec['name']} | {rec['settings']} | {rec['size'][0]}x{rec['size'][1]} "
                  f"| {rec['wall_s']:.0f} | {rec['cpu_s']:.0f} |")
    print(f"total CPU: {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
