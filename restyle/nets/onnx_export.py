"""ONNX export of style networks, and running them with onnxruntime.

A deployment option: the exported graph takes ``image`` (N, 3, H, W) float32 RGB in
[0, 1] (any H, W >= 4) and ``mix`` (N, n_styles) blend weights, and returns the
stylised image. :func:`export_onnx` writes it and checks onnxruntime's output against
PyTorch's on a test image; :func:`onnx_session` exports once per model file into the
cache folder and returns a ready session.

Needs the optional extra: ``pip install 'restyle[onnx]'`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from .. import fsio
from ..backbone import cache_dir
from ..errors import RestyleError
from .stylenet import StyleNet

INSTALL = "pip install 'restyle[onnx]'"
OPSET = 18


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise RestyleError(f"ONNX support needs {module}; install it with `{INSTALL}`") from None


class OnnxStyleNet:
    """An onnxruntime session of an exported :class:`StyleNet`."""

    def __init__(self, path: str | Path, threads: int | None = None):
        ort = _require("onnxruntime")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = Path(path)

    def run(self, image: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] and (N, n_styles) weights -> stylised (N, 3, H, W) float32."""
        x = np.ascontiguousarray(image.detach().float().cpu().numpy())
        m = np.ascontiguousarray(mix.detach().float().cpu().numpy())
        if m.shape[0] != x.shape[0]:
            m = np.repeat(m[:1], x.shape[0], 0)
        (out,) = self.session.run(None, {"image": x, "mix": m})
        return torch.from_numpy(out)


def export_onnx(net: StyleNet, path: str | Path, check: bool = True, tolerance: float = 2e-3
                ) -> Path:
    """Write ``net`` as ONNX to ``path`` (atomically); with ``check``, run both on a test
    image at a size the export did not trace and fail if they differ by more than
    ``tolerance`` (max absolute difference, images in [0, 1])."""
    _require("onnx")
    _require("onnxscript")
    path = Path(path)
    if path.suffix != ".onnx":
        raise RestyleError(f"ONNX files end in .onnx, not {path.name}")
    if not path.parent.is_dir():
        raise RestyleError(f"cannot write {path}: folder {path.parent} does not exist")
    net = net.float().eval().to(memory_format=torch.contiguous_format)
    example = (torch.rand(1, 3, 64, 96), net.mix_vector(0))
    dyn = torch.export.Dim.DYNAMIC  # the exporter derives the valid ranges itself
    try:
        import warnings
        with fsio.atomic_write(path, None, suffix=".onnx") as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    net, example, input_names=["image", "mix"], output_names=["stylized"],
                    dynamic_shapes={"image": {0: dyn, 2: dyn, 3: dyn}, "mix": {0: dyn}},
                    opset_version=OPSET, dynamo=True, external_data=False, verbose=False)
            program.save(str(tmp), external_data=False)
            if check:
                check_onnx(net, str(tmp), tolerance)
    except RestyleError:
        raise
    except Exception as e:
        raise RestyleError(f"ONNX export failed: {str(e).splitlines()[0]}") from None
    return path


def check_onnx(net: StyleNet, path: str | Path, tolerance: float = 2e-3) -> float:
    """Max absolute difference of onnxruntime's and PyTorch's outputs (fp32) on a test image
    of an odd size, blending all styles; RestyleError above ``tolerance``."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 77, 130, generator=gen)
    mix = net.mix_vector([1.0] * net.n_styles)
    with torch.no_grad():
        ref = net(x, mix).float()
    got = OnnxStyleNet(path).run(x, mix)
    diff = float((ref - got).abs().max())
    if not diff <= tolerance:
        raise RestyleError(f"the ONNX export of the style network differs from PyTorch by "
                           f"{diff:.2e} (> {tolerance:g})")
    return diff


_SESSIONS: dict[str, OnnxStyleNet] = {}


def onnx_session(net: StyleNet) -> OnnxStyleNet:
    """A session for ``net``, exported once into the cache (keyed by its weights)."""
    digest = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        digest.update(k.encode())
        digest.update(v.detach().float().cpu().numpy().tobytes())
    key = digest.hexdigest()[:16]
    if key not in _SESSIONS:
        folder = cache_dir() / "onnx"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"stylenet-{key}.onnx"
        if not path.exists():
            import copy
            export_onnx(copy.deepcopy(net), path)
        _SESSIONS[key] = OnnxStyleNet(path)
    return _SESSIONS[key]
