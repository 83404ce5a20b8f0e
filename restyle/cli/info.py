"""``restyle models`` and ``restyle info``: what is installed, on which machine."""

from __future__ import annotations

from typing import Sequence

from ..api import info, models
from .common import facts_command


def cmd_models(argv: Sequence[str]) -> int:
    return facts_command(argv, "restyle models", "List the installed style networks (with "
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
    return facts_command(argv, "restyle info", "Versions (restyle, torch, onnxruntime, "
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

