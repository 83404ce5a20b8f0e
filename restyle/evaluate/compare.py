"""``restyle compare``: methods side by side on contents and styles, with metrics.

Like the survey's figure 3: one row per (content, style) pair, one column per
method, and under each picture its content and style metrics
(:mod:`restyle.evaluate.metrics`). Writes ``sheet.png``, ``sheet.html`` (the images
as files next to it, with the full metric table and the settings) and
``results.json`` into the output folder, and records seeds, versions and machine.

By default it pairs the shared test photos with the shared paintings (photo i with
painting i, cycling) and runs every transfer method that can run here; a method
that cannot (a missing trained model, a style its network was not trained on)
gets a cell that says why instead of stopping the comparison.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw

from .. import fsio, imaging
from ..api import transfer
from ..errors import RestyleError
from ..methods import all_methods, get_method, parse_settings
from ..methods.network import default_model, style_for_painting
from ..params import ArgumentParser, make
from .bench import SHARED, machine_info
from .metrics import DIRECTIONS, evaluate

SHORT = {"content_distance": "content", "ssim_luminance": "ssim", "edge_similarity": "edges",
         "gram_distance": "gram", "gaussian_wasserstein": "w2", "palette_distance": "palette"}
ARROW = {"lower": "↓", "higher": "↑"}


def default_pairs(rows: int) -> list[tuple[str, str]]:
    contents = sorted(str(p) for p in (SHARED / "content").glob("*") if p.is_file())
    styles = sorted(str(p) for p in (SHARED / "styles").glob("*") if p.is_file())
    if not contents or not styles:
        raise RestyleError(f"no shared test images in {SHARED}; pass --contents and --styles")
    return [(contents[i % len(contents)], styles[i % len(styles)]) for i in range(rows)]


def default_methods() -> list[str]:
    return [m.name for m in all_methods() if m.task == "transfer"]


def _method_kwargs(name: str, style: str, size: int, overrides: dict) -> tuple[object, dict]:
    """The style argument and keyword arguments for one cell."""
    method = get_method(name)
    kwargs = {"size": size, **overrides.get(name, {})}
    if method.takes.styles == "names":  # a trained network: its style named like the painting
        model = kwargs.get("model") or default_model()
        return style_for_painting(model, style), {**kwargs, "model": model}
    return style, kwargs


def run_cell(name: str, content: str, style: str, size: int, overrides: dict) -> dict:
    try:
        style_arg, kwargs = _method_kwargs(name, style, size, overrides)
        start = time.perf_counter()
        out = transfer(content, style_arg, method=name, **kwargs)
        seconds = time.perf_counter() - start
    except RestyleError as e:
        return {"method": name, "error": str(e)}
    metrics = evaluate(imaging.to_tensor(out), _at(content, out.size), _at(style, None, size))
    return {"method": name, "image": out, "seconds": seconds, "metrics": metrics,
            "settings": {k: v for k, v in vars(make(get_method(name).Params, **kwargs)).items()}}


def _at(path: str, size: tuple[int, int] | None, long_side: int = 512) -> torch.Tensor:
    img = imaging.load_image(path)
    if size is not None:
        img = imaging.resize(img, size)
    elif max(img.size) > long_side:
        img = imaging.resize(img, imaging.fit_size(*img.size, long_side))
    return imaging.to_tensor(img)


def render_sheet(rows: list[dict], methods: list[str], cell: int) -> Image.Image:
    """The PNG sheet: columns content, style, then the methods; metrics under each output."""
    font_px, small_px = max(12, cell // 18), max(10, cell // 22)
    font, small = imaging.font(font_px), imaging.font(small_px)
    pad, text_h, head = 6, 4 * (small_px + 5) + 6, font_px + 12
    cols = 2 + len(methods)
    sheet = Image.new("RGB", (cols * (cell + pad) + pad, head + len(rows) * (cell + text_h + pad)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for j, title in enumerate(["content", "style"] + methods):
        draw.text((pad + j * (cell + pad), 4), title, fill="black", font=font)
    for i, row in enumerate(rows):
        y = head + i * (cell + text_h + pad)
        images = [imaging.load_image(row["content"]), imaging.load_image(row["style"])]
        for j, img in enumerate(images):
            img = img.copy()
            img.thumbnail((cell, cell))
            sheet.paste(img, (pad + j * (cell + pad), y))
            draw.text((pad + j * (cell + pad), y + cell + 2), Path(row[["content", "style"][j]]).stem,
                      fill="black", font=small)
        for j, result in enumerate(row["results"]):
            x = pad + (j + 2) * (cell + pad)
            if "error" in result:
                draw.multiline_text((x, y + 4), _wrap(result["error"], cell, small), fill="firebrick",
                                    font=small)
                continue
            img = result["image"].copy()
            img.thumbnail((cell, cell))
            sheet.paste(img, (x, y))
            m = result["metrics"]
            lines = [f"{result['seconds']:.1f} s",
                     f"content {m['content_distance']:.2f}  ssim {m['ssim_luminance']:.2f}",
                     f"gram {m['gram_distance']:.2f}  w2 {m['gaussian_wasserstein']:.2f}",
                     f"palette {m['palette_distance']:.1f}"]
            draw.multiline_text((x, y + cell + 2), "\n".join(lines), fill="black", font=small)
    return sheet


def _wrap(text: str, width: int, font) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        trial = f"{line} {w}".strip()
        if font.getlength(trial) > width and line:
            lines.append(line)
            line = w
        else:
            line = trial
    return "\n".join(lines + [line])


def render_html(rows: list[dict], methods: list[str], info: dict, files: dict) -> str:
    esc = html.escape
    out = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
           "<meta name='viewport' content='width=device-width, initial-scale=1'>",
           "<title>restyle compare</title><style>",
           "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}",
           "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:6px;"
           "vertical-align:top;font-size:13px}img{max-width:256px;display:block}",
           ".err{color:#a11;max-width:256px}.m{font-family:ui-monospace,monospace;"
           "white-space:pre}</style></head><body>",
           "<h1>restyle compare</h1>",
           f"<p>{esc(info['command'])}<br>machine: {esc(info['machine']['cpu'])}, "
           f"{info['machine']['cores']} cores; torch {esc(info['machine']['torch'])}, restyle "
           f"{esc(info['machine']['restyle'])}; {esc(info['machine']['date'])}</p>",
           "<p>Metrics: " + "; ".join(f"{esc(SHORT[k])} = {esc(k)} ({esc(d)} is better)"
                                     for k, d in DIRECTIONS.items()) + ".</p>",
           "<table><tr><th>content</th><th>style</th>"
           + "".join(f"<th>{esc(m)}</th>" for m in methods) + "</tr>"]
    for i, row in enumerate(rows):
        out.append("<tr>")
        for key in ("content", "style"):
            out.append(f"<td><img src='{esc(files[(i, key)])}' alt='{key}'>"
                       f"{esc(Path(row[key]).name)}</td>")
        for j, r in enumerate(row["results"]):
            if "error" in r:
                out.append(f"<td class='err'>{esc(r['error'])}</td>")
                continue
            metrics = "\n".join(f"{SHORT[k]}{ARROW[d]} {r['metrics'][k]:.4f}"
                                for k, d in DIRECTIONS.items())
            out.append(f"<td><img src='{esc(files[(i, j)])}' alt='{esc(r['method'])}'>"
                       f"<div class='m'>{r['seconds']:.2f} s\n{esc(metrics)}</div></td>")
        out.append("</tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def compare(methods: Sequence[str], pairs: Sequence[tuple[str, str]], out_dir: str | Path,
            size: int = 256, overrides: dict | None = None, overwrite: bool = False,
            command: str = "restyle compare", echo=print) -> dict:
    """Run ``methods`` on the (content, style) ``pairs`` and write the sheet; returns the
    results (without images) as written to ``results.json``."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise RestyleError(f"{out} exists and is not empty; pass --overwrite or another folder")
    if not out.parent.is_dir():
        raise RestyleError(f"cannot write {out}: folder {out.parent} does not exist")
    for name in methods:
        if get_method(name).task != "transfer":
            raise RestyleError(f"{name!r} is not a transfer method")
    for content, style in pairs:
        imaging.load_image(content, "content image")
        imaging.load_image(style, "style image")
    overrides = overrides or {}
    rows = []
    for content, style in pairs:
        row = {"content": content, "style": style, "results": []}
        for name in methods:
            echo(f"{name}: {Path(content).name} x {Path(style).name} ...")
            row["results"].append(run_cell(name, content, style, size, overrides))
        rows.append(row)
    out.mkdir(exist_ok=True)
    files: dict = {}
    for i, row in enumerate(rows):
        for key in ("content", "style"):
            img = imaging.load_image(row[key])
            img.thumbnail((size, size))
            files[(i, key)] = f"row{i}-{key}.jpg"
            img.save(out / files[(i, key)], quality=90)
        for j, r in enumerate(row["results"]):
            if "image" in r:
                files[(i, j)] = f"row{i}-{r['method']}.png"
                imaging.save_image(r["image"], out / files[(i, j)], overwrite=True)
    info = {"command": command, "machine": machine_info(), "size": size,
            "methods": list(methods)}
    imaging.save_image(render_sheet(rows, list(methods), min(size, 256)), out / "sheet.png",
                       overwrite=True)
    fsio.write_text(out / "sheet.html", render_html(rows, list(methods), info, files))
    result = {**info, "directions": DIRECTIONS, "rows": [
        {"content": r["content"], "style": r["style"], "results": [
            {k: v for k, v in c.items() if k != "image"} for c in r["results"]]} for r in rows]}
    fsio.write_text(out / "results.json", json.dumps(result, indent=1, default=str))
    return result


def main(argv: Sequence[str]) -> int:
    parser = ArgumentParser(
        prog="restyle compare",
        description="Run methods side by side over contents and styles and write a comparison "
                    "sheet (sheet.png, sheet.html, results.json) with metrics under each image.")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="folder for the sheet (created; must be empty unless --overwrite)")
    parser.add_argument("--methods", default="", help="comma-separated (default: every "
                        "transfer method; those that cannot run here say why in their cells)")
    parser.add_argument("--contents", default="", help="comma-separated content images "
                        "(default: the shared test photos)")
    parser.add_argument("--styles", default="", help="comma-separated style images (default: "
                        "the shared paintings); with --contents: every content x every style")
    parser.add_argument("--rows", type=int, default=4,
                        help="rows with the default images (photo i with painting i)")
    parser.add_argument("--size", type=int, default=256, help="long side of the outputs")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=VALUE",
                        help="a method setting, e.g. gatys.iterations=100 (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing sheet")
    ns = parser.parse_args(argv)
    if not 16 <= ns.size <= 4096:
        raise RestyleError("--size must be between 16 and 4096")
    methods = [m.strip() for m in ns.methods.split(",") if m.strip()] or default_methods()
    for m in methods:
        get_method(m)
    contents = [c.strip() for c in ns.contents.split(",") if c.strip()]
    styles = [s.strip() for s in ns.styles.split(",") if s.strip()]
    if contents or styles:
        if not contents or not styles:
            raise RestyleError("give both --contents and --styles (or neither for the defaults)")
        pairs = [(c, s) for c in contents for s in styles]
    else:
        pairs = default_pairs(max(1, ns.rows))
    overrides = parse_settings(ns.set, methods, "compared")
    result = compare(methods, pairs, ns.output, ns.size, overrides, ns.overwrite,
                     command="restyle compare " + " ".join(argv))
    cells = [c for r in result["rows"] for c in r["results"]]
    failed = sum("error" in c for c in cells)
    print(f"wrote {Path(ns.output).resolve() / 'sheet.png'} and sheet.html "
          f"({len(cells) - failed} images, {failed} cells could not run)")
    return 0
