"""The machine restyle runs on, as reports record it: CPU and its vector instruction
set, cores, threads, bfloat16 support, versions and the date (``restyle info``, every
benchmark and comparison report)."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone

import torch

from . import __version__
from .optimize import cpu_supports_bf16


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            **cpu_isa(), "bf16_cpu": cpu_supports_bf16(), "torch": torch.__version__,
            "python": platform.python_version(), "restyle": __version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def cpu_isa() -> dict:
    """The CPU's vector instruction set from its flags (AMX, AVX-512, AVX2), the level
    PyTorch's kernels run at (``ATEN_CPU_CAPABILITY=avx2`` holds them to AVX2, emulating a
    laptop) and, as ``isa``, the one that applies: the lower of the two."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        flags = []
    cpu = ("AMX" if "amx_tile" in flags else "AVX-512" if "avx512f" in flags
           else "AVX2" if "avx2" in flags else "below AVX2" if flags else "unknown")
    if cpu == "AVX-512" and "avx512_bf16" in flags:
        cpu = "AVX-512 (with AVX512_BF16)"
    capability = torch.backends.cpu.get_cpu_capability()
    isa = cpu
    if capability in ("AVX2", "DEFAULT", "NO AVX") and cpu.startswith(("AMX", "AVX-512")):
        isa = f"{'AVX2' if capability == 'AVX2' else 'no AVX'} (torch held there; CPU: {cpu})"
    return {"isa": isa, "cpu_flags_isa": cpu, "torch_capability": capability}
