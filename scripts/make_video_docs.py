"""Make the pictures and numbers of docs/video.md: per-frame vs temporal stylisation.

Stylises a clip twice with one method (``--temporal off`` and ``on``) through
restyle.video, measures both (temporal warping error, frame style distances, time per
frame), and writes

* ``docs/video_<name>_strip.jpg``: rows of frames: the input, per-frame, per-frame
  change, temporal, temporal change, where "change" is |frame t - frame t-1 warped by
  the input's flow| over the pixels the consistency check trusts (black: none; the
  shimmer of per-frame stylisation shows as bright speckle);
* ``docs/video_<name>.gif``: per-frame (left) and temporal (right) side by side, when it
  stays under 1 MB;
* a Markdown table of the measurements on stdout (and ``<work>/results.json``).

Stylised frames are kept in ``--work`` and reused, so the pictures can be remade
without stylising again. Example (the docs' pictures)::

    RESTYLE_MODELS=... python scripts/make_video_docs.py \\
        ../shared/data/video/sintel_mountain_2 ../shared/data/styles/starry_night.jpg \\
        --method gatys --size 256 --iterations 40 --name sintel
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restyle import imaging  # noqa: E402
from restyle.evaluate.metrics import gram_distance, temporal_warping_error  # noqa: E402
from restyle.video import (FRAME_NAME, consistency, encode, flows, iter_frames,  # noqa: E402
                           probe, stylize_video, warp)


def stylise(args, mode: str) -> dict:
    folder = Path(args.work) / f"{args.method}-{mode}"
    timing = folder.with_suffix(".json")
    if folder.exists() and timing.exists():
        return json.loads(timing.read_text())
    params = dict(json.loads(args.params)) if args.params else {}
    if args.iterations:
        params["iterations"] = args.iterations
    cpu, wall = time.process_time(), time.perf_counter()
    times = []
    r = stylize_video(args.input, args.style, folder, method=args.method, size=args.size,
                      temporal=mode, frames=args.frames, overwrite=True,
                      progress=lambda p: times.append(p.last), **params)
    info = {"frames": r.frames, "size": r.size, "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu, "first_frame_s": times[0],
            "later_frame_s": float(np.mean(times[1:])) if len(times) > 1 else None}
    timing.write_text(json.dumps(info, indent=2))
    return info


def frames_of(folder: Path, n: int) -> list[Image.Image]:
    return [Image.open(folder / FRAME_NAME.format(i + 1)).convert("RGB") for i in range(n)]


def change_maps(frames: list[Image.Image], inputs: list[Image.Image]) -> list[Image.Image]:
    """|out_t - warp(out_t-1)| on trusted pixels, x4, as images (the first frame: black)."""
    out = [Image.new("RGB", frames[0].size)]
    for t in range(1, len(frames)):
        a, b = inputs[t - 1].resize(frames[0].size), inputs[t].resize(frames[0].size)
        fw, bw = flows(a, b)
        c = torch.from_numpy(consistency(fw, bw))[None, None]
        prev, cur = imaging.to_tensor(frames[t - 1]), imaging.to_tensor(frames[t])
        diff = (cur - warp(prev, bw)).abs() * c * 4
        out.append(imaging.to_pil(diff.clamp(0, 1)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", help="video file or folder of frames")
    ap.add_argument("style", help="style image")
    ap.add_argument("--method", default="gatys")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=0, help="optimization methods only")
    ap.add_argument("--params", default="", help="more method parameters as JSON")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--name", default="sintel", help="name in the docs' file names")
    ap.add_argument("--work", default="/tmp/restyle-video-docs")
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    ap.add_argument("--strip", default="8,9,10,11,12", help="frames (from 1) in the strip")
    ap.add_argument("--gif-width", type=int, default=240, help="width of each half of the GIF")
    ap.add_argument("--only", choices=("off", "on"), default=None,
                    help="only stylise this mode (to run both at once in two processes)")
    args = ap.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    docs = Path(args.docs)
    docs.mkdir(exist_ok=True)

    if args.only:
        print(json.dumps(stylise(args, args.only)))
        return 0
    info = {mode: stylise(args, mode) for mode in ("off", "on")}
    n = min(i["frames"] for i in info.values())
    inputs = list(iter_frames(probe(args.input), n))
    per = frames_of(Path(args.work) / f"{args.method}-off", n)
    tem = frames_of(Path(args.work) / f"{args.method}-on", n)

    style = imaging.to_tensor(imaging.load_image(args.style, "style image"))
    style = imaging.resize_tensor(style, (round(512 * style.shape[-2] / style.shape[-1]), 512))
    results = {}
    for mode, frames in (("off", per), ("on", tem)):
        warp_err = temporal_warping_error(frames, inputs)
        grams = [gram_distance(imaging.to_tensor(f.resize(
            imaging.fit_size(*f.size, 512), Image.LANCZOS)), style)["mean"] for f in frames]
        results[mode] = {"warp": warp_err["mean"], "trusted": warp_err["trusted"],
                         "gram": float(np.mean(grams)), **info[mode]}
    (Path(args.work) / "results.json").write_text(json.dumps(results, indent=2))

    # the strip: input / per-frame / change / temporal / change
    picks = [int(s) - 1 for s in args.strip.split(",") if int(s) <= n]
    w, h = per[0].size
    rows = [[inputs[i].resize((w, h), Image.LANCZOS) for i in picks], [per[i] for i in picks],
            [m for i, m in enumerate(change_maps(per, inputs)) if i in picks],
            [tem[i] for i in picks],
            [m for i, m in enumerate(change_maps(tem, inputs)) if i in picks]]
    gap = 4
    sheet = Image.new("RGB", (len(picks) * (w + gap) - gap, len(rows) * (h + gap) - gap),
                      "white")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            sheet.paste(img, (c * (w + gap), r * (h + gap)))
    strip = docs / f"video_{args.name}_strip.jpg"
    sheet.save(strip, quality=85, optimize=True)

    # the GIF: per-frame | temporal
    gif_dir = Path(args.work) / "gif-frames"
    gif_dir.mkdir(exist_ok=True)
    gw = args.gif_width - args.gif_width % 2
    gh = round(gw * h / w)
    gh -= gh % 2
    for i, (a, b) in enumerate(zip(per, tem)):
        both = Image.new("RGB", (2 * gw + 4, gh), "white")
        both.paste(a.resize((gw, gh), Image.LANCZOS), (0, 0))
        both.paste(b.resize((gw, gh), Image.LANCZOS), (gw + 4, 0))
        both.save(gif_dir / FRAME_NAME.format(i + 1))
    gif = docs / f"video_{args.name}.gif"
    src = probe(args.input)
    encode(gif_dir, n, gif, src.fps, None, None)
    if gif.stat().st_size > 1_000_000:
        print(f"{gif} is {gif.stat().st_size / 1e6:.1f} MB (over 1 MB): removed; try a smaller "
              "--gif-width or fewer --frames", file=sys.stderr)
        gif.unlink()
    else:
        print(f"wrote {gif} ({gif.stat().st_size / 1e3:.0f} kB)")
    print(f"wrote {strip}")

    print(f"\n| {args.method} ({w}x{h}, {n} frames) | warping error | trusted | gram distance | "
          "first frame s | later frames s/frame | CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mode, label in (("off", "per-frame"), ("on", "temporal")):
        r = results[mode]
        later = f"{r['later_frame_s']:.1f}" if r["later_frame_s"] is not None else "-"
        print(f"| {label} | {r['warp']:.2f} | {r['trusted']:.2f} | {r['gram']:.4f} | "
              f"{r['first_frame_s']:.1f} | {later} | {r['cpu_s']:.0f} |")
    ratio = results["off"]["warp"] / max(results["on"]["warp"], 1e-12)
    dg = 100 * (results["on"]["gram"] / results["off"]["gram"] - 1)
    print(f"\nwarping error cut {ratio:.1f}x; style (gram) distance {dg:+.1f} % vs per-frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
