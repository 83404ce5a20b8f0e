"""What every ``restyle`` command shares: the progress bar, output checks, standard
input and output, style options and SIGTERM handling."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from .. import fsio, imaging
from ..errors import RestyleError
from ..optimize import Progress
from ..params import ArgumentParser, parse_floats
from ..run import parse_style_specs

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
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def common_output(parser: argparse.ArgumentParser) -> None:
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


def source(spec: str):
    """An input image argument: ``-`` reads the image bytes from standard input."""
    return sys.stdin.buffer if spec == STDIO else spec


def output(ns) -> Path | None:
    """The checked output path, or None for standard output (``-o -``)."""
    if ns.output != STDIO:
        return imaging.check_output_path(ns.output, ns.overwrite)
    if ns.json:
        raise RestyleError("--json and -o - both use standard output; write the image to a file")
    if ns.snapshot_every:
        raise RestyleError("--snapshot-every needs an output file, not -o -")
    return None


def method_name(argv: Sequence[str], default: str) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default=default)
    ns, _ = pre.parse_known_args(argv)
    return ns.method


def run_with_progress(fn, ns, out: Path | None, record: dict) -> None:
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
    styles, weights = parse_style_specs(list(styles) + list(style_opts), files=not by_name)
    if not styles:
        raise RestyleError("give a style: " + ("a style name of the model (see `restyle "
                                               "models`), e.g. --style udnie" if by_name else
                                               f"an image, e.g. {example}"))
    if style_weights:
        weights = parse_floats(style_weights, "--style-weights")
    return styles, weights



def facts_command(argv: Sequence[str], prog: str, description: str, facts, show) -> int:
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

