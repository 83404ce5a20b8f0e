"""The ``restyle`` command.

Every method's flags are generated from its Params dataclass, so a method added
to the registry shows up here with its documented parameters. Errors a user can
fix print one line and exit with code 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

from . import __version__, fsio, imaging
from .errors import RestyleError
from .methods import all_methods, get_method, get_transfer_method
from .optimize import Progress
from .params import ArgumentParser, add_arguments, describe, from_namespace, parse_floats
from .runtime import keep_freed_memory

ASSETS = Path(__file__).parent / "assets"


# ----------------------------------------------------------------------------- progress

class ProgressPrinter:
    """A tqdm bar with the current losses; optional snapshots every N iterations."""

    def __init__(self, quiet: bool = False, snapshot_every: int = 0, snapshot_dir: Path | None = None):
        self.quiet = quiet
        self.snapshot_every = snapshot_every
        self.snapshot_dir = snapshot_dir
        self.bar = None
        self.tuned: dict | None = None  # what --auto chose (restyle.autotune.AutoResult.record)

    def __call__(self, p: Progress) -> None:
        if not self.quiet:
            if self.bar is None:
                from tqdm import tqdm
                self.bar = tqdm(total=p.steps, unit="it", file=sys.stderr, dynamic_ncols=True,
                                leave=False)
            left = "" if p.remaining is None else f", {p.remaining:.0f} s left"
            self.bar.set_description(f"level {p.level + 1}/{p.levels} {p.size[1]}x{p.size[0]}"
                                     f"{left}")
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in {"loss": p.loss, **p.parts}.items()
                                  if math.isfinite(v)}, refresh=False)
            self.bar.update(p.step - self.bar.n)
        if self.snapshot_every and p.step % self.snapshot_every == 0 and self.snapshot_dir:
            self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            imaging.save_image(p.image, self.snapshot_dir / f"step-{p.step:05d}.png")

    def on_tuned(self, result) -> None:
        """--auto chose the parameters: log them (one line) and keep them for --json."""
        self.tuned = result.record()
        if not self.quiet:
            print(f"restyle: {result.summary()}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ----------------------------------------------------------------------------- commands

#: The file name that means standard input (for an input image) or output (-o).
STDIO = "-"


@contextlib.contextmanager
def sigterm_interrupts():
    """Inside the block SIGTERM raises KeyboardInterrupt, like Ctrl-C, so that a command
    that is killed politely stops the way an interrupted one does."""
    import signal
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _common_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True,
                        help="output image (.png, .jpg, ...), or - for PNG bytes on standard "
                             "output")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--snapshot-every", type=int, default=0, metavar="N",
                        help="also save the image every N iterations into OUTPUT_snapshots/")
    parser.add_argument("--json", action="store_true",
                        help="print the result as one line of JSON (input, output, method, "
                             "params, size, seconds) instead of the 'wrote' line")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _source(spec: str):
    """An input image argument: ``-`` reads the image bytes from standard input."""
    return sys.stdin.buffer if spec == STDIO else spec


def _output(ns) -> Path | None:
    """The checked output path, or None for standard output (``-o -``)."""
    if ns.output != STDIO:
        return imaging.check_output_path(ns.output, ns.overwrite)
    if ns.json:
        raise RestyleError("--json and -o - both use standard output; write the image to a file")
    if ns.snapshot_every:
        raise RestyleError("--snapshot-every needs an output file, not -o -")
    return None


def _method_name(argv: Sequence[str], default: str) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default=default)
    ns, _ = pre.parse_known_args(argv)
    return ns.method


def _run_with_progress(fn, ns, out: Path | None, record: dict) -> None:
    """Run ``fn(callbacks, out)`` (an API call that writes ``out`` and returns the image),
    then report: the PNG on standard output when ``out`` is None, else a 'wrote' line or,
    with --json, ``record`` completed with the output, its size and the seconds."""
    snapshots = out.with_name(out.stem + "_snapshots") if ns.snapshot_every else None
    if snapshots is not None:
        fsio.check_name(snapshots)  # its folder's name must fit too, before the work
    printer = ProgressPrinter(ns.quiet, ns.snapshot_every, snapshots)
    start = time.perf_counter()
    try:
        image = fn([printer], out)
    finally:
        printer.close()
    seconds = time.perf_counter() - start
    if out is None:
        sys.stdout.buffer.write(imaging.image_bytes(image))
        sys.stdout.flush()
    elif ns.json:
        auto = {"auto_chosen": printer.tuned} if printer.tuned is not None else {}
        print(json.dumps({**record, "output": str(out.resolve()), "size": list(image.size),
                          "seconds": round(seconds, 4), **auto}), flush=True)
    else:
        print(f"wrote {out.resolve()} ({seconds:.1f} s)", flush=True)


def style_arguments(parser: argparse.ArgumentParser) -> None:
    """``--style-weights``, which goes with styles given as images or as ``--style S[:W]``."""
    parser.add_argument("--style-weights", default="", metavar="W1,W2",
                        help="blend weights of the style images, e.g. 0.7,0.3")


def parse_style_options(styles: Sequence[str], style_opts: Sequence[str], style_weights: str,
                        by_name: bool, example: str) -> tuple[list[str], list[float]]:
    """Styles and their weights from positional styles, ``--style S[:W][,...]`` options
    (``a:0.5,b:0.5``; see :func:`restyle.api.parse_style_specs`) and ``--style-weights``,
    which wins when given. Styles are image paths, or names in a model when ``by_name``."""
    from .api import parse_style_specs
    styles, weights = parse_style_specs(list(styles) + list(style_opts), files=not by_name)
    if not styles:
        raise RestyleError("give a style: " + ("a style name of the model (see `restyle "
                                               "models`), e.g. --style udnie" if by_name else
                                               f"an image, e.g. {example}"))
    if style_weights:
        weights = parse_floats(style_weights, "--style-weights")
    return styles, weights


def cmd_transfer(argv: Sequence[str]) -> int:
    from .api import DEFAULT_TRANSFER, transfer
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default=None)
    pre.add_argument("--model", default=None)
    known, _ = pre.parse_known_args(argv)
    # --model NAME means "a trained style network", unless a method is named
    method = command_method(known.method or ("network" if known.model else DEFAULT_TRANSFER),
                            "transfer")
    by_name = method.style_kind == "name"
    parser = ArgumentParser(
        prog="restyle transfer",
        description="Render CONTENT in the style of STYLE (several styles are blended: "
                    "a.jpg:0.3,b.jpg:0.7). With a trained style network (--model NAME), the "
                    "styles are names in the model: --style starry_night:0.3,udnie:0.7. "
                    "CONTENT may be a folder of photos (then -o names the output folder) or - "
                    "(image bytes on standard input); -o - writes PNG bytes to standard output.")
    parser.add_argument("content", help="content photo, a folder of photos, or - for stdin")
    parser.add_argument("styles", nargs="*", metavar="style",
                        help="style image(s); for --model, style names")
    parser.add_argument("--style", action="append", default=[], metavar="STYLE[:W][,...]",
                        dest="style_opts", help="a style (image, or name in the model) with an "
                        "optional blend weight; a:0.5,b:0.5 or repeat to blend")
    parser.add_argument("--method", default=method.name, help="method (see `restyle methods`)")
    style_arguments(parser)
    _common_output(parser)
    add_arguments(parser, method.Params)
    ns = parser.parse_args(argv)
    params = from_namespace(method.Params, ns)
    styles, weights = parse_style_options(ns.styles, ns.style_opts, ns.style_weights, by_name,
                                          "restyle transfer photo.jpg style.jpg -o out.png")
    record = {"method": method.name, "styles": styles, "style_weights": weights,
              "params": vars(params)}

    def run(photo):
        return lambda cbs, out: transfer(photo, styles, method=method.name, style_weights=weights,
                                         output=out, overwrite=True, callbacks=cbs,
                                         **vars(params))

    if ns.content != STDIO and Path(ns.content).is_dir():
        return _transfer_folder(Path(ns.content), ns, run, record)
    out = _output(ns)
    _run_with_progress(run(_source(ns.content)), ns, out, {"input": ns.content, **record})
    return 0


def _transfer_folder(folder: Path, ns, run, record: dict) -> int:
    """``restyle transfer FOLDER -o OUT_DIR``: every image of FOLDER into OUT_DIR under its
    own name (PNG where restyle cannot write the input's format). A photo that cannot be
    read is reported and skipped (exit code 2 at the end); other errors stop the run."""
    out_dir = Path(ns.output)
    if ns.output == STDIO or out_dir.suffix.lower() in imaging.SAVE_FORMATS:
        raise RestyleError(f"for a folder of photos, -o names an output folder, not {ns.output}")
    if out_dir.exists() and not out_dir.is_dir():
        raise RestyleError(f"cannot write into {out_dir}: it is a file, not a folder")
    if not out_dir.parent.is_dir():
        raise RestyleError(f"cannot create {out_dir}: folder {out_dir.parent} does not exist")
    photos = imaging.image_files(folder)
    if not photos:
        raise RestyleError(f"no images in {folder} (looked for "
                           f"{', '.join(sorted(imaging.READ_SUFFIXES))})")
    targets = [out_dir / (p.name if p.suffix.lower() in imaging.SAVE_FORMATS else p.stem + ".png")
               for p in photos]
    for target in targets:  # a folder onto itself: --overwrite must not replace the photos
        imaging.refuse_input_overwrite(target, [photos, record.get("styles") or []])
    existing = [t for t in targets if t.exists()]
    if existing and not ns.overwrite:
        raise RestyleError(f"{len(existing)} of the outputs already exist in {out_dir} (e.g. "
                           f"{existing[0].name}); pass --overwrite to replace them")
    out_dir.mkdir(exist_ok=True)
    failed = 0
    for photo, target in zip(photos, targets):
        try:
            image = imaging.load_image(photo, "content image")
        except RestyleError as e:
            failed += 1
            print(f"restyle: error: {e}; skipped", file=sys.stderr)
            if ns.json:
                print(json.dumps({"input": str(photo), "error": str(e)}), flush=True)
            continue
        _run_with_progress(run(image), ns, imaging.check_output_path(target, overwrite=True),
                           {"input": str(photo), **record})
    if failed:
        print(f"restyle: error: {failed} of {len(photos)} images in {folder} could not be read",
              file=sys.stderr)
        return 2
    return 0


def command_method(name: str, task: str):
    """The registered method ``name`` for a ``restyle TASK`` command; a method of another
    task is a one-line error naming the command it belongs to."""
    method = get_method(name)
    if method.task != task:
        raise RestyleError(f"method {method.name!r} is a {method.task} method; "
                           f"use restyle {method.task}")
    return method


def cmd_texture(argv: Sequence[str]) -> int:
    from .api import texture
    method = command_method(_method_name(argv, "texture"), "texture")
    parser = ArgumentParser(prog="restyle texture",
                                     description="Synthesise a new texture like EXEMPLAR.")
    parser.add_argument("exemplar", help="texture exemplar image")
    parser.add_argument("--method", default="texture", help="method (see `restyle methods`)")
    _common_output(parser)
    add_arguments(parser, method.Params)
    ns = parser.parse_args(argv)
    params = from_namespace(method.Params, ns)
    _run_with_progress(lambda cbs, out: texture(_source(ns.exemplar), method=method.name,
                                                output=out, overwrite=True, callbacks=cbs,
                                                **vars(params)),
                       ns, _output(ns), {"input": ns.exemplar, "method": method.name,
                                         "params": vars(params)})
    return 0


def cmd_dream(argv: Sequence[str]) -> int:
    from .api import dream
    method = command_method(_method_name(argv, "deepdream"), "dream")
    parser = ArgumentParser(
        prog="restyle dream",
        description="Deep Dream: amplify the patterns that VGG16 layers (or single channels, "
                    "--layers relu4_3:12,87) see in IMAGE, over several octaves.")
    parser.add_argument("image", help="input photo")
    parser.add_argument("--method", default="deepdream", help="method (see `restyle methods`)")
    _common_output(parser)
    add_arguments(parser, method.Params)
    ns = parser.parse_args(argv)
    params = from_namespace(method.Params, ns)
    _run_with_progress(lambda cbs, out: dream(_source(ns.image), method=method.name, output=out,
                                              overwrite=True, callbacks=cbs, **vars(params)),
                       ns, _output(ns), {"input": ns.image, "method": method.name,
                                         "params": vars(params)})
    return 0


def cmd_doodle(argv: Sequence[str]) -> int:
    from .api import doodle
    method = get_method("mrf")
    parser = ArgumentParser(
        prog="restyle doodle",
        description="Semantic style transfer (neural doodle): paint --target-map, a "
                    "colour-coded sketch, with the regions of STYLE that --style-map paints "
                    "in the same colours. With --content PHOTO the photo is kept as well.")
    parser.add_argument("style", help="style image (e.g. a painting)")
    parser.add_argument("--content", default=None, metavar="PHOTO",
                        help="optional photo whose content to keep (default: paint the map "
                             "from noise)")
    _common_output(parser)
    add_arguments(parser, method.Params)
    ns = parser.parse_args(argv)
    params = from_namespace(method.Params, ns)
    if not (params.style_map and params.target_map):
        raise RestyleError("restyle doodle needs --style-map and --target-map (colour-coded "
                           "regions of the style image and of the picture to paint)")
    kw = vars(params)
    record = {"input": ns.style, "content": ns.content, "method": method.name, "params": dict(kw)}
    style_map, target_map = kw.pop("style_map"), kw.pop("target_map")
    _run_with_progress(lambda cbs, out: doodle(ns.style, style_map=style_map,
                                               target_map=target_map, content=ns.content,
                                               output=out, overwrite=True, callbacks=cbs, **kw),
                       ns, _output(ns), record)
    return 0


def cmd_analogy(argv: Sequence[str]) -> int:
    from .api import analogy
    method = get_method("analogy")
    parser = ArgumentParser(
        prog="restyle analogy",
        description="Deep image analogy (Liao et al. 2017): from A and B' make A' (A's "
                    "content in B''s appearance) and, with --also-b, B (B''s content in A's "
                    "appearance).")
    parser.add_argument("a", metavar="A", help="image A (e.g. a photo)")
    parser.add_argument("b_prime", metavar="B_PRIME", help="image B' (e.g. a painting)")
    parser.add_argument("--also-b", default=None, metavar="FILE",
                        help="also write B, the other half of the analogy")
    _common_output(parser)
    add_arguments(parser, method.Params)
    ns = parser.parse_args(argv)
    params = from_namespace(method.Params, ns)
    out = _output(ns)
    b_out = imaging.check_output_path(ns.also_b, ns.overwrite) if ns.also_b else None
    record = {"input": [ns.a, ns.b_prime], "method": method.name, "params": vars(params),
              "b_output": str(b_out.resolve()) if b_out else None}
    _run_with_progress(lambda cbs, o: analogy(ns.a, ns.b_prime, output=o, b_output=b_out,
                                              overwrite=True, callbacks=cbs, **vars(params))[0],
                       ns, out, record)
    if b_out is not None and not ns.json:
        print(f"wrote {b_out.resolve()}", file=sys.stdout if out else sys.stderr)
    return 0


def cmd_video(argv: Sequence[str]) -> int:
    from .api import video
    from .video import VideoParams, work_dir
    method = get_transfer_method(_method_name(argv, "adain"), "video")
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
            from tqdm import tqdm
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
                           callbacks=[on_iteration] if method.family == "image-optimization"
                           else [], **video_opts, **params)
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
    from .batch import main as batch_main
    return batch_main(argv)


def cmd_methods(argv: Sequence[str]) -> int:
    parser = ArgumentParser(prog="restyle methods",
                                     description="List the registered methods and parameters.")
    parser.add_argument("--brief", action="store_true", help="names and summaries only")
    ns = parser.parse_args(argv)
    for m in all_methods():
        print(f"{m.name:12s} {m.family:20s} {m.task:9s} {m.summary}")
        if ns.brief:
            continue
        for d in describe(m.Params):
            extra = f" {{{', '.join(map(str, d['choices']))}}}" if d.get("choices") else ""
            print(f"    --{d['name'].replace('_', '-'):18s} {d['type']:5s} "
                  f"default {d['default']!r}{extra}: {d['help']}")
        print()
    return 0


def _free_name(path: Path) -> Path:
    if not path.exists():
        return path
    for i in range(2, 10000):
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise RestyleError(f"no free file name next to {path}")


def cmd_demo(argv: Sequence[str]) -> int:
    from .api import DEFAULT_TRANSFER, transfer
    parser = ArgumentParser(
        prog="restyle demo",
        description="The built-in example: scikit-image's astronaut photo in the style of "
                    "restyle's own demo painting (512 px, the default method: a one-pass "
                    "result refined by optimization for --budget seconds). Needs no input "
                    "files.")
    parser.add_argument("-o", "--output", default=None,
                        help="output image (default: restyle-demo.png here, never overwritten)")
    parser.add_argument("--size", type=int, default=512, help="long side in pixels")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="seconds for the transfer (default: the anytime method's, "
                             f"{get_method(DEFAULT_TRANSFER).Params.budget:g})")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ns = parser.parse_args(argv)
    from skimage import data
    out = imaging.check_output_path(ns.output) if ns.output else _free_name(Path("restyle-demo.png"))
    ns.snapshot_every, ns.json = 0, False
    budget = {} if ns.budget is None else {"budget": ns.budget}
    _run_with_progress(lambda cbs, o: transfer(data.astronaut(), ASSETS / "demo_style.jpg",
                                               size=ns.size, output=o, callbacks=cbs, **budget),
                       ns, out, {})
    return 0


TRAINABLE = {"decoder": "a VGG16 decoder for AdaIN / WCT / style-swap (resumable)",
             "style": "a feed-forward style network for one or many styles (resumable)",
             "adain-lite": "the distilled AdaIN encoder/decoder for --method adain-lite "
                           "(resumable)",
             "mgan": "an MGAN decoder for one painting, against a patch critic (resumable)"}


def _run_training(fn, out: str) -> int:
    """Run a training call: SIGTERM checkpoints like Ctrl-C; exit 130 when interrupted."""
    with sigterm_interrupts():  # checkpoint, then stop
        try:
            fn()
        except KeyboardInterrupt:
            print(f"restyle: interrupted; run the same command to resume from the checkpoint "
                  f"in {out}", file=sys.stderr)
            return 130
    return 0


def _training_arguments(parser: argparse.ArgumentParser, weights_help: str) -> None:
    """The options every ``restyle train`` network has."""
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run folder (checkpoint.pt, log.jsonl, " + weights_help + ")")
    parser.add_argument("--minutes", type=float, default=None,
                        help="time budget of this call; alone, it also plans the run's length")
    parser.add_argument("--steps", type=int, default=None,
                        help="planned length of the whole run (end of the cosine schedule)")
    parser.add_argument("--export", default=None, metavar="FILE",
                        help="also write the float16 weights here when this call ends")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="training photos (default: $RESTYLE_DATA/train/content or "
                             "../shared/data/train/content)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start over even if OUT holds a run")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0, metavar="M",
                        help="checkpoint interval (default: 5)")
    parser.add_argument("--eval-every", type=int, default=250, metavar="N",
                        help="evaluate on held-out photos every N steps (default: 250)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="bf16 autocast where supported (default), or force one")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to train (default: a CUDA GPU if there is one)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def _run_options(ns: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`_training_arguments`' options, for any trainer."""
    return dict(minutes=ns.minutes, steps=ns.steps, resume=not ns.no_resume,
                data_dir=ns.data_dir, export=ns.export,
                checkpoint_minutes=ns.checkpoint_minutes, eval_every=ns.eval_every,
                precision=ns.precision, device=ns.device,
                echo=None if ns.quiet else (lambda m: print(m, flush=True)))


def train_style_cli(argv: Sequence[str]) -> int:
    import dataclasses

    from .nets.train_style import StyleTraining, train_style
    parser = ArgumentParser(
        prog="restyle train style",
        description="Train a feed-forward style network on STYLE images: one image gives a "
                    "per-style network, several a multi-style (conditional instance norm) "
                    "network whose styles can be blended. Resumable like the decoders.")
    parser.add_argument("styles", nargs="+", metavar="STYLE", help="style image(s)")
    parser.add_argument("--names", default="", metavar="N1,N2",
                        help="style names (default: the file names without extension)")
    parser.add_argument("--add-to", default=None, metavar="MODEL",
                        help="add the styles to this trained network, training only their "
                             "own normalisation parameters")
    parser.add_argument("--init-from", default="auto", metavar="MODEL",
                        help="start a new run from this trained network's weights: the same "
                             "styles to fine-tune it (e.g. at another --strength), other "
                             "styles to start from a network that already paints photos; "
                             "'auto' (default): the installed painters network when the "
                             "shape fits, 'none': random weights")
    _training_arguments(parser, "stylenet.safetensors, preview.png")
    add_arguments(parser, StyleTraining)
    ns = parser.parse_args(argv)
    settings = dataclasses.asdict(from_namespace(StyleTraining, ns))
    names = [n.strip() for n in ns.names.split(",")] if ns.names else None
    return _run_training(lambda: train_style(
        ns.styles, ns.out, names=names, add_to=ns.add_to, init_from=ns.init_from,
        **_run_options(ns), **settings), ns.out)


def train_lite_cli(argv: Sequence[str]) -> int:
    import dataclasses

    from .nets.train_lite import LiteTraining, train_lite
    parser = ArgumentParser(
        prog="restyle train adain-lite",
        description="Distil AdaIN into a narrow VGG16-shaped encoder and its decoder, taught "
                    "by the full VGG16 (--method adain-lite). Resumable like the decoders.")
    _training_arguments(parser, "adain_lite.safetensors")
    parser.add_argument("--style-dir", action="append", default=None, metavar="DIR",
                        help="style images (default: .../styles); repeat for more folders")
    parser.add_argument("--teacher-decoder", default=None, metavar="FILE",
                        help="relu4_1 decoder the student's decoder is pruned from (default: "
                             "the packaged one; without it the decoder starts random)")
    add_arguments(parser, LiteTraining)
    ns = parser.parse_args(argv)
    settings = dataclasses.asdict(from_namespace(LiteTraining, ns))
    return _run_training(lambda: train_lite(
        ns.out, style_dirs=ns.style_dir, teacher_decoder=ns.teacher_decoder,
        **_run_options(ns), **settings), ns.out)


def train_mgan_cli(argv: Sequence[str]) -> int:
    import dataclasses

    from .nets.train_mgan import MGANTraining, train_mgan
    parser = ArgumentParser(
        prog="restyle train mgan",
        description="Train an MGAN (Li & Wand 2016) for the painting STYLE: the adain-lite "
                    "decoder learns, against a patch discriminator on encoder features, to "
                    "paint photos with the painting's patches (--method mgan). Resumable.")
    parser.add_argument("style", metavar="STYLE", help="the painting")
    _training_arguments(parser, "mgan.safetensors, preview.png")
    parser.add_argument("--lite", default=None, metavar="FILE",
                        help="distilled AdaIN model to start from (default: the packaged one)")
    add_arguments(parser, MGANTraining)
    ns = parser.parse_args(argv)
    settings = dataclasses.asdict(from_namespace(MGANTraining, ns))
    return _run_training(lambda: train_mgan(
        ns.style, ns.out, lite=ns.lite, **_run_options(ns), **settings), ns.out)


def cmd_train(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: restyle train NETWORK [options]\n\nnetworks:")
        print("\n".join(f"  {k:10s} {v}" for k, v in TRAINABLE.items()))
        print("\n`restyle train NETWORK --help` shows its options.")
        return 0
    if argv[0] not in TRAINABLE:
        raise RestyleError(f"unknown network {argv[0]!r} to train; one of: {', '.join(TRAINABLE)}")
    if argv[0] == "style":
        return train_style_cli(argv[1:])
    if argv[0] == "adain-lite":
        return train_lite_cli(argv[1:])
    if argv[0] == "mgan":
        return train_mgan_cli(argv[1:])
    import dataclasses

    from .nets.train_decoder import DecoderTraining, train_decoder
    parser = ArgumentParser(
        prog="restyle train decoder",
        description="Train a decoder that inverts VGG16 features at --level. Checkpoints go to "
                    "OUT every few minutes and when the run stops (also on Ctrl-C / SIGTERM); "
                    "running the same command again resumes the run.")
    _training_arguments(parser, "decoder_LEVEL.safetensors")
    parser.add_argument("--style-dir", default=None, metavar="DIR",
                        help="style images for --adain-loss (default: .../styles)")
    parser.add_argument("--init-from", default=None, metavar="FILE",
                        help="start a new run from these decoder weights (a .safetensors file "
                             "from an earlier run; the optimizer starts fresh); a shallower "
                             "level's decoder becomes the new decoder's tail")
    add_arguments(parser, DecoderTraining)
    ns = parser.parse_args(argv[1:])
    settings = dataclasses.asdict(from_namespace(DecoderTraining, ns))
    return _run_training(lambda: train_decoder(
        out_dir=ns.out, style_dir=ns.style_dir, init_from=ns.init_from, **_run_options(ns),
        **settings), ns.out)


def _facts_command(argv: Sequence[str], prog: str, description: str, facts, show) -> int:
    """A command that prints what ``facts()`` returns: as text by ``show``, or with --json
    as JSON."""
    parser = ArgumentParser(prog=prog, description=description)
    parser.add_argument("--json", action="store_true", help="print it as JSON")
    ns = parser.parse_args(argv)
    found = facts()
    if ns.json:
        print(json.dumps(found, indent=1))
    else:
        show(found)
    return 0


def cmd_models(argv: Sequence[str]) -> int:
    from .api import models
    return _facts_command(argv, "restyle models", "List the installed style networks (with "
                          "their styles) and decoders.", models, _print_models)


def _print_models(found: dict) -> None:
    print(f"models folder: {found['models_dir']}")
    print("style networks (restyle transfer PHOTO --model NAME --style STYLE):")
    for name, m in found["models"].items():
        print(f"  {name:14s} {', '.join(m['styles'])}  ({m['steps'] or '?'} steps)")
    if not found["models"]:
        print("  none (train one with `restyle train style`)")
    print("decoders (adain, wct, style-swap):")
    for level, d in found["decoders"].items():
        if not d["installed"]:
            note = "missing"
        elif "error" in d:
            note = f"unreadable: {d['error']}"
        else:
            note = f"{d['steps'] or '?'} steps, held-out PSNR {d['heldout_psnr']}"
        print(f"  {level:14s} {note}")
    lite = found.get("adain_lite") or {}
    note = ("missing" if not lite.get("installed") else f"unreadable: {lite['error']}"
            if "error" in lite else f"width {lite['width']}, {lite['steps'] or '?'} steps")
    print(f"distilled AdaIN (adain-lite): {note}")


def cmd_info(argv: Sequence[str]) -> int:
    from .api import info
    return _facts_command(argv, "restyle info", "Versions (restyle, torch, onnxruntime, "
                          "Python), CPU, threads, device and the installed models.", info,
                          _print_info)


def _print_info(facts: dict) -> None:
    print(f"restyle {facts['restyle']}, torch {facts['torch']}, onnxruntime "
          f"{facts['onnxruntime'] or 'not installed'}, Python {facts['python']}")
    print(f"cpu: {facts['cpu']}, {facts['cores']} cores, bfloat16 support: {facts['bf16_cpu']}")
    print(f"threads: {facts['torch_threads']} (inter-op {facts['interop_threads']}; set "
          "OMP_NUM_THREADS to change)")
    print(f"device: {facts['device']} (CUDA available for training: {facts['cuda_available']})")
    _print_models(facts)


def cmd_styles(argv: Sequence[str]) -> int:
    from .api import style_sheet
    from .methods.network import NetworkParams
    parser = ArgumentParser(
        prog="restyle styles",
        description="A contact sheet of every style of a trained style network on PHOTO: the "
                    "photo, then one labelled tile per style, to choose from.")
    parser.add_argument("photo", help="the photo (or - for stdin)")
    parser.add_argument("-o", "--output", required=True,
                        help="sheet image (.png, .jpg, ...), or - for PNG on standard output")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--columns", type=int, default=0,
                        help="tiles per row (default: about square)")
    parser.add_argument("--json", action="store_true",
                        help="print the result as one line of JSON instead of the 'wrote' line")
    add_arguments(parser, NetworkParams, skip=("size",))
    parser.add_argument("--size", type=int, default=256,
                        help="long side of each tile (default 256)")
    ns = parser.parse_args(argv)
    params = vars(from_namespace(NetworkParams, ns))
    if ns.columns < 0:
        raise RestyleError("--columns must be at least 0")
    ns.snapshot_every, ns.quiet = 0, True
    _run_with_progress(lambda _, out: style_sheet(_source(ns.photo), columns=ns.columns,
                                                  output=out, overwrite=True, **params),
                       ns, _output(ns),
                       {"input": ns.photo, "method": "network", "params": params})
    return 0


def cmd_bench(argv: Sequence[str]) -> int:
    from .evaluate.bench import main as bench_main
    return bench_main(argv)


def cmd_compare(argv: Sequence[str]) -> int:
    from .evaluate.compare import main as compare_main
    return compare_main(argv)


def cmd_evaluate(argv: Sequence[str]) -> int:
    from .evaluate.metrics import main as evaluate_main
    return evaluate_main(argv)


def cmd_studio(argv: Sequence[str]) -> int:
    from .studio import main as studio_main
    return studio_main(argv)


COMMANDS = {
    "transfer": (cmd_transfer, "render a photo in the style of one or more images"),
    "texture": (cmd_texture, "synthesise a texture from an exemplar"),
    "dream": (cmd_dream, "Deep Dream: amplify what VGG layers or channels see in a photo"),
    "doodle": (cmd_doodle, "paint a colour-coded sketch in the style of a painting (semantic)"),
    "analogy": (cmd_analogy, "deep image analogy: A' and B from a photo A and a painting B'"),
    "video": (cmd_video, "stylise a video or frame folder, temporally consistent, audio kept"),
    "batch": (cmd_batch, "stylise folders of images and videos: resumable, manifest, Ray"),
    "methods": (cmd_methods, "list methods and their parameters"),
    "demo": (cmd_demo, "run the built-in example (no input files needed)"),
    "train": (cmd_train, "train a network (decoder, style network), resumable"),
    "models": (cmd_models, "list installed style networks and decoders"),
    "styles": (cmd_styles, "contact sheet: every style of a trained network on one photo"),
    "info": (cmd_info, "versions, threads, device and installed models"),
    "bench": (cmd_bench, "measure speed and memory; writes BENCHMARKS.md"),
    "compare": (cmd_compare, "methods side by side on contents and styles: sheet with metrics"),
    "evaluate": (cmd_evaluate, "quality metrics of outputs against their content and style"),
    "studio": (cmd_studio, "the web studio and HTTP API: live previews, job queue"),
}


def usage() -> str:
    lines = [f"restyle {__version__}: neural style transfer", "", "usage: restyle COMMAND [options]", ""]
    lines += [f"  {name:10s} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "`restyle COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"restyle: error: unknown command {name!r}; one of: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    try:
        keep_freed_memory()
        return COMMANDS[name][0](rest)
    except RestyleError as e:
        print(f"restyle: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:
        print(f"restyle: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("restyle: interrupted; the output was not written", file=sys.stderr)
        return 130
    except MemoryError:
        print("restyle: error: out of memory; try a smaller --size", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
