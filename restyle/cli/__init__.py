"""The ``restyle`` command: ``restyle COMMAND [options]``.

Every method's flags are generated from its Params dataclass and its inputs from its
declarations (restyle/cli/methods.py), so a method added to the registry shows up here
with its documented parameters. Errors a user can fix print one line and exit with code
2; nothing is half-written. The commands live in this package, one module per group;
they run through :mod:`restyle.run` and the API, never through each other's front ends.
"""

from __future__ import annotations

import sys
from typing import Sequence

from .. import __version__
from ..errors import RestyleError
from ..runtime import keep_freed_memory
from .common import ProgressPrinter, sigterm_interrupts  # noqa: F401  (restyle.cli.X)
from .info import cmd_info, cmd_models
from .media import cmd_batch, cmd_video
from .methods import (cmd_analogy, cmd_demo, cmd_doodle, cmd_dream, cmd_methods, cmd_styles,
                      cmd_texture, cmd_transfer, command_method)  # noqa: F401
from .tools import cmd_bench, cmd_compare, cmd_evaluate, cmd_studio
from .train import cmd_train


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

