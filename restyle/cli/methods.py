"""The method commands, generated from the registry's declarations.

``restyle transfer``, ``restyle texture`` and ``restyle dream`` are one command each per
task (:data:`TASKS`): the chosen method's declarations make its parser (a content
positional when it takes a content image, styles as images or as names in a model, one
flag per field of its ``Params``) and the run goes through :mod:`restyle.run`. A method
registered for a new task needs only a :class:`Task` entry here to get its command.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from skimage import data

from .. import imaging, run
from ..api import DEFAULT_TRANSFER, analogy, doodle, style_sheet, transfer
from ..errors import RestyleError
from ..methods import Method, all_methods, get_method
from ..methods.network import NetworkParams
from ..params import ArgumentParser, add_arguments, describe, from_namespace
from .common import (STDIO, common_output, output, parse_style_options, run_with_progress,
                     source, style_arguments)

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@dataclass(frozen=True)
class Task:
    """A ``restyle TASK`` command: its default method and its description."""

    default: str
    description: str
    #: --style S[:W] options besides positional styles, and a folder of photos as CONTENT
    style_options: bool = False
    example: str = ""


TASKS = {
    "transfer": Task(
        DEFAULT_TRANSFER,
        "Render CONTENT in the style of STYLE (several styles are blended: "
        "a.jpg:0.3,b.jpg:0.7). With a trained style network (--model NAME), the "
        "styles are names in the model: --style starry_night:0.3,udnie:0.7. "
        "CONTENT may be a folder of photos (then -o names the output folder) or - "
        "(image bytes on standard input); -o - writes PNG bytes to standard output.",
        style_options=True, example="restyle transfer photo.jpg style.jpg -o out.png"),
    "texture": Task("texture", "Synthesise a new texture like EXEMPLAR.",
                    example="restyle texture exemplar.jpg -o out.png"),
    "dream": Task("deepdream", "Deep Dream: amplify the patterns that VGG16 layers (or single "
                  "channels, --layers relu4_3:12,87) see in IMAGE, over several octaves."),
}

#: positional arguments' help, by the word a method's declaration uses for them
INPUT_HELP = {"content": "content photo, a folder of photos, or - for stdin",
              "image": "input photo", "style": "style image(s); for --model, style names",
              "exemplar": "texture exemplar image(s)"}


def command_method(name: str, task: str) -> Method:
    """The registered method ``name`` for a ``restyle TASK`` command; a method of another
    task is a one-line error naming the command it belongs to."""
    method = get_method(name)
    if method.task != task:
        raise RestyleError(f"method {method.name!r} is a {method.task} method; "
                           f"use restyle {method.task}")
    return method


def _chosen(argv: Sequence[str], task: str) -> Method:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default=None)
    pre.add_argument("--model", default=None)
    known, _ = pre.parse_known_args(argv)
    default = TASKS[task].default
    if task == "transfer" and known.model and not known.method:
        default = "network"  # --model NAME means "a trained style network"
    return command_method(known.method or default, task)


def method_command(task: str):
    """The ``restyle TASK`` command (a function of argv), built from the declarations of
    the method it is given (``--method``)."""
    spec = TASKS[task]

    def command(argv: Sequence[str]) -> int:
        method = _chosen(argv, task)
        takes = method.takes
        parser = ArgumentParser(prog=f"restyle {task}", description=spec.description)
        if takes.content != "none":
            parser.add_argument("content", metavar=takes.content_word,
                                help=INPUT_HELP.get(takes.content_word, "input image"))
        if takes.styles != "none":
            parser.add_argument("styles", nargs="*" if spec.style_options else "+",
                                metavar=takes.style_word, help=INPUT_HELP.get(takes.style_word))
            if spec.style_options:
                parser.add_argument("--style", action="append", default=[],
                                    metavar="STYLE[:W][,...]", dest="style_opts",
                                    help="a style (image, or name in the model) with an "
                                         "optional blend weight; a:0.5,b:0.5 or repeat to "
                                         "blend")
        parser.add_argument("--method", default=method.name,
                            help="method (see `restyle methods`)")
        if takes.styles != "none":
            style_arguments(parser)
        common_output(parser)
        add_arguments(parser, method.Params)
        ns = parser.parse_args(argv)
        params = from_namespace(method.Params, ns)
        record: dict = {"method": method.name}
        styles, weights = [], None
        if takes.styles != "none":
            styles, weights = parse_style_options(
                ns.styles, getattr(ns, "style_opts", []), ns.style_weights,
                takes.styles == "names", spec.example)
            if spec.style_options:
                record.update(styles=styles, style_weights=weights)
        record["params"] = vars(params)
        content = getattr(ns, "content", None)

        def job(photo):
            return lambda cbs, out: run.execute(run.request(
                method, photo, styles, style_weights=weights, params=params, output=out,
                overwrite=True), cbs)

        if spec.style_options and content != STDIO and Path(content).is_dir():
            return _transfer_folder(Path(content), ns, job, record)
        if content is None:  # the styles are the input (a texture's exemplar)
            given = ns.styles[0] if len(ns.styles) == 1 else list(ns.styles)
            styles = [source(s) for s in styles]
            run_with_progress(job(None), ns, output(ns), {"input": given, **record})
        else:
            run_with_progress(job(source(content)), ns, output(ns), {"input": content, **record})
        return 0

    command.__doc__ = f"restyle {task}: {spec.description}"
    return command


def _transfer_folder(folder: Path, ns, job, record: dict) -> int:
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
        run_with_progress(job(image), ns, imaging.check_output_path(target, overwrite=True),
                          {"input": str(photo), **record})
    if failed:
        print(f"restyle: error: {failed} of {len(photos)} images in {folder} could not be read",
              file=sys.stderr)
        return 2
    return 0


def cmd_doodle(argv: Sequence[str]) -> int:
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
    common_output(parser)
    add_arguments(parser, method.Params)
    ns = parser.parse_args(argv)
    params = from_namespace(method.Params, ns)
    if not (params.style_map and params.target_map):
        raise RestyleError("restyle doodle needs --style-map and --target-map (colour-coded "
                           "regions of the style image and of the picture to paint)")
    kw = vars(params)
    record = {"input": ns.style, "content": ns.content, "method": method.name, "params": dict(kw)}
    style_map, target_map = kw.pop("style_map"), kw.pop("target_map")
    run_with_progress(lambda cbs, out: doodle(ns.style, style_map=style_map,
                                               target_map=target_map, content=ns.content,
                                               output=out, overwrite=True, callbacks=cbs, **kw),
                       ns, output(ns), record)
    return 0


def cmd_analogy(argv: Sequence[str]) -> int:
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
    common_output(parser)
    add_arguments(parser, method.Params)
    ns = parser.parse_args(argv)
    params = from_namespace(method.Params, ns)
    out = output(ns)
    b_out = imaging.check_output_path(ns.also_b, ns.overwrite) if ns.also_b else None
    record = {"input": [ns.a, ns.b_prime], "method": method.name, "params": vars(params),
              "b_output": str(b_out.resolve()) if b_out else None}
    run_with_progress(lambda cbs, o: analogy(ns.a, ns.b_prime, output=o, b_output=b_out,
                                              overwrite=True, callbacks=cbs, **vars(params))[0],
                       ns, out, record)
    if b_out is not None and not ns.json:
        print(f"wrote {b_out.resolve()}", file=sys.stdout if out else sys.stderr)
    return 0


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
    out = imaging.check_output_path(ns.output) if ns.output else _free_name(Path("restyle-demo.png"))
    ns.snapshot_every, ns.json = 0, False
    budget = {} if ns.budget is None else {"budget": ns.budget}
    run_with_progress(lambda cbs, o: transfer(data.astronaut(), ASSETS / "demo_style.jpg",
                                               size=ns.size, output=o, callbacks=cbs, **budget),
                       ns, out, {})
    return 0




def cmd_styles(argv: Sequence[str]) -> int:
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
    run_with_progress(lambda _, out: style_sheet(source(ns.photo), columns=ns.columns,
                                                  output=out, overwrite=True, **params),
                       ns, output(ns),
                       {"input": ns.photo, "method": "network", "params": params})
    return 0


cmd_transfer = method_command("transfer")
cmd_texture = method_command("texture")
cmd_dream = method_command("dream")
