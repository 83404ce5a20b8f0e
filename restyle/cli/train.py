"""``restyle train NETWORK``: the resumable trainers."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Sequence

from ..errors import RestyleError
from ..nets.train_decoder import DecoderTraining, train_decoder
from ..nets.train_lite import LiteTraining, train_lite
from ..nets.train_mgan import MGANTraining, train_mgan
from ..nets.train_style import StyleTraining, train_style
from ..params import ArgumentParser, add_arguments, from_namespace
from .common import sigterm_interrupts


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

