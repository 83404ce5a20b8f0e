"""``restyle video`` and ``restyle batch``: many frames, many files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..api import video
from ..batch import FORMATS, RAY_HINT, BatchSummary, run_batch
from ..optimize import Progress
from ..params import ArgumentParser, add_arguments, from_namespace, parse_floats
from ..run import method_for
from ..video import VIDEO_PARAM_NAMES, VideoParams, work_dir
from .common import method_name, parse_style_options, sigterm_interrupts, style_arguments


def cmd_video(argv: Sequence[str]) -> int:
    method = method_for(method_name(argv, "adain"), "transfer", use="video")
    parser = ArgumentParser(
        prog="restyle video",
        description="Stylise INPUT (a video file: mp4, webm, mov, mkv, gif; or a folder of "
                    "frames) frame by frame with any transfer method, temporally consistent "
                    "(Ruder et al. 2016). OUTPUT is a video with the input's frame rate and "
                    "audio track (copied, not re-encoded), a .gif, or a folder name for PNG "
                    "frames. An interrupted run continues with --resume. Needs "
                    "pip install 'restyle[video]'.")
    parser.add_argument("input", help="video file or folder of frames")
    parser.add_argument("styles", nargs="+", metavar="style",
                        help="style image(s); for --method network, style names in the model")
    parser.add_argument("-o", "--output", required=True,
                        help="output video (.mp4, .mov, .mkv, .webm), .gif, or a folder name")
    parser.add_argument("--method", default=method.name,
                        help="any transfer method (default: adain; see `restyle methods`)")
    parser.add_argument("--style-weights", default="", metavar="W1,W2",
                        help="blend weights of the styles, e.g. 0.7,0.3")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last finished frame")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUTPUT if it exists (and drop an unfinished run)")
    parser.add_argument("--json", action="store_true",
                        help="print the result as one line of JSON instead of the 'wrote' line")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_arguments(parser, VideoParams)
    add_arguments(parser, method.Params)
    ns = parser.parse_args(argv)
    names = {f for f in vars(ns)}
    video_opts = {k: getattr(ns, k) for k in VideoParams.__dataclass_fields__ if k in names}
    params = vars(from_namespace(method.Params, ns))
    weights = parse_floats(ns.style_weights, "--style-weights") if ns.style_weights else None
    state = {"bar": None, "done": 0}

    def bar(total=None, initial=0):
        if state["bar"] is None:
            state["bar"] = tqdm(total=total, initial=initial, unit="frame", file=sys.stderr,
                                dynamic_ncols=True, desc="stylising")
        return state["bar"]

    def on_frame(p) -> None:
        state["done"] = p.frame
        if not ns.quiet:
            b = bar(p.frames, p.frame - p.new)
            b.total = p.frames
            b.update(p.frame - b.n)

    def on_iteration(p: Progress) -> None:  # slow frames: show the optimizer moving
        if not ns.quiet:
            bar().set_postfix_str(f"frame {state['done'] + 1}: iteration {p.step}/{p.steps}")

    with sigterm_interrupts():
        try:
            result = video(ns.input, list(ns.styles), output=ns.output,
                           method=method.name, style_weights=weights, resume=ns.resume,
                           overwrite=ns.overwrite, progress=on_frame,
                           callbacks=[on_iteration] if method.iterates() else [], **video_opts, **params)
        except KeyboardInterrupt:
            if state["bar"] is not None:
                state["bar"].close()
            print(f"restyle: interrupted after frame {state['done']}; the output was not "
                  f"written. Run the same command with --resume to continue (unfinished run "
                  f"in {work_dir(Path(ns.output))})", file=sys.stderr)
            return 130
        finally:
            if state["bar"] is not None:
                state["bar"].close()
    fps = float(result.fps)
    if ns.json:
        print(json.dumps({"input": ns.input, "output": str(result.path.resolve()),
                          "method": method.name, "styles": list(ns.styles),
                          "style_weights": weights, "params": {**video_opts, **params},
                          "frames": result.frames, "resumed": result.resumed,
                          "size": list(result.size), "fps": fps, "audio": result.audio,
                          "seconds": round(result.seconds, 4)}))
        return 0
    extra = f", {result.resumed} resumed" if result.resumed else ""
    print(f"wrote {result.path.resolve()} ({result.frames} frames{extra}, {result.size[0]}x"
          f"{result.size[1]}, {fps:.3g} fps{', ' + result.audio if result.audio else ''}; "
          f"{result.seconds:.1f} s)")
    return 0



def cmd_batch(argv: Sequence[str]) -> int:
    method = method_for(method_name(argv, "adain"), "transfer", use="batch")
    parser = ArgumentParser(
        prog="restyle batch",
        description="Stylise every image and video that INPUTS name (folders, searched "
                    "recursively; glob patterns; files; text files listing paths) into "
                    "OUT_DIR, mirroring their folders. A manifest in OUT_DIR records each "
                    "item: running the same command again skips finished items and resumes "
                    "a killed run; changed parameters reprocess only what they affect. "
                    "See docs/batch.md.")
    parser.add_argument("inputs", nargs="+", metavar="INPUTS",
                        help="folders, glob patterns ('photos/**/*.jpg'), files, or .txt lists")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                        help="output folder (created if missing)")
    parser.add_argument("--method", default=method.name,
                        help="any transfer method (default: adain; see `restyle methods`)")
    parser.add_argument("--style", action="append", default=[], metavar="STYLE[:W]",
                        dest="style_opts", required=True,
                        help="a style image (or, for --method network, a style name) with an "
                             "optional blend weight; repeat to blend")
    style_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="png",
                        help="image output format (default: png); videos keep their "
                             "container (.avi becomes .mp4)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this process, a pool of workers (default); ray: Ray Data "
                             f"actors, a local Ray or --address ({RAY_HINT})")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="with --engine ray: join this running Ray cluster (e.g. "
                             "HOST:6379 or auto) instead of starting a local one")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="parallel workers (default: one per core; Ray: one actor per "
                             "CPU of the cluster)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="also retry items that failed before and have not changed "
                             "(items that failed for lack of space, an I/O error or memory "
                             "are retried anyway)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_arguments(parser, VideoParams)
    add_arguments(parser, method.Params)
    ns = parser.parse_args(argv)
    styles, weights = parse_style_options([], ns.style_opts, ns.style_weights,
                                          method.takes.styles == "names", "restyle batch")
    video_opts = {k: getattr(ns, k) for k in VIDEO_PARAM_NAMES if hasattr(ns, k)}
    params = {**video_opts, **vars(from_namespace(method.Params, ns))}
    bar = None

    def on_item(r: dict | None, s: BatchSummary) -> None:
        nonlocal bar
        if ns.quiet or not s.pending:
            return
        if bar is None:
            bar = tqdm(total=s.pending, unit="img", file=sys.stderr, dynamic_ncols=True,
                       desc="stylising", smoothing=0.1)
        if r is not None:
            bar.set_postfix_str(f"failed {s.failed}" if s.failed else "", refresh=False)
            bar.update(1)

    with sigterm_interrupts():
        try:
            summary = run_batch(ns.inputs, ns.output, styles, method=method.name,
                                style_weights=weights, engine=ns.engine, address=ns.address,
                                workers=ns.workers, format=ns.format,
                                retry_failed=ns.retry_failed, progress=on_item, **params)
        except KeyboardInterrupt:
            print("restyle: interrupted; finished items are recorded in the manifest. Run "
                  "the same command to continue.", file=sys.stderr)
            return 130
        finally:
            if bar is not None:
                bar.close()
    for path, reason in summary.errors[:10]:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    if len(summary.errors) > 10:
        print(f"... and {len(summary.errors) - 10} more (see the manifest)", file=sys.stderr)
    print(summary.line())
    return 1 if summary.failed else 0
