"""Feed-forward style networks: one network, one or many styles (Johnson / Ulyanov / Dumoulin).

:class:`StyleNet` is the image transformation network of Johnson et al. (2016) with
the changes the field adopted after it:

* instance normalisation instead of batch normalisation (Ulyanov et al. 2016);
* upsampling by nearest-neighbour resize followed by a convolution instead of
  transposed convolutions, which leave checkerboard artefacts (Odena et al. 2016);
* reflection padding everywhere (no dark frame along the borders);
* *conditional* instance normalisation (Dumoulin et al. 2017): every normalisation
  layer has one (gamma, beta) pair per style, so one network holds many styles.
  A style is chosen, or several blended, by a mixing vector ``w`` over the styles:
  the layer uses ``gamma = sum_k w_k gamma_k`` and ``beta = sum_k w_k beta_k``.
  A network with one style is the per-style network.

Layout (``width`` = c): 9x9 conv c, 3x3/2 conv 2c, 3x3/2 conv 4c, ``blocks``
residual blocks at 4c, two (2x resize, 3x3 conv) stages back to c, 9x9 conv to RGB,
sigmoid. The defaults (c = 16, 5 blocks, 0.43 M parameters) run a 512 px photo in about
0.06 s on two CPU cores in bfloat16 (BENCHMARKS.md), where TRAINING-NOTES measured 0.12 s
before inference normalised with the batch-norm kernel.

Weights are stored as float16 safetensors with their style names and training
facts in the metadata; :func:`load_stylenet` reads them back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..backbone import cpu_inference, load_once, read_safetensors_metadata, save_weights
from ..errors import RestyleError
from .decoder import MODELS_ENV, reflect_pad1

FORMAT = "restyle.stylenet"
FORMAT_VERSION = "1"


def reflect_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """``F.pad(x, (p,) * 4, mode="reflect")``; in eager CPU inference as slice copies,
    several times faster than the built-in on channels-last bfloat16 maps."""
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()
    if p == 1 and not tracing and min(x.shape[-2:]) >= 2:
        return reflect_pad1(x)  # forward and backward as slices (training too)
    if not cpu_inference(x) or min(x.shape[-2:]) <= p:
        return F.pad(x, (p,) * 4, mode="reflect")
    n, c, h, w = x.shape
    fmt = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
           else torch.contiguous_format)
    out = torch.empty((n, c, h + 2 * p, w + 2 * p), dtype=x.dtype, device=x.device,
                      memory_format=fmt)
    out[:, :, p:-p, p:-p] = x
    for i in range(1, p + 1):
        out[:, :, p - i, p:-p] = x[:, :, i]
        out[:, :, p + h - 1 + i, p:-p] = x[:, :, h - 1 - i]
    for i in range(1, p + 1):
        out[:, :, :, p - i] = out[:, :, :, p + i]
        out[:, :, :, p + w - 1 + i] = out[:, :, :, p + w - 1 - i]
    return out


class CondInstanceNorm(nn.Module):
    """Instance normalisation with one learned (gamma, beta) per style, mixed by weights."""

    def __init__(self, channels: int, n_styles: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(n_styles, channels))
        self.beta = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W); ``mix`` (N, n_styles) weights (rows usually sum to 1).

        The statistics are accumulated in float32 whatever ``x``'s dtype. In CPU
        inference each image goes through the batch-norm kernel in training mode: over a
        batch of one image its statistics are that image's instance-norm statistics, and
        the kernel computes them and applies the style's affine map in two passes,
        channels-last and bfloat16 natively (measured at 384x512x16: 1.3 ms against
        11.6 ms for sums by matrix products and separate elementwise passes). Otherwise,
        for channels-last maps the sums over positions are matrix-vector products on the
        free (N, HW, C) view (``var_mean`` over the spatial dimensions is a slow strided
        reduction in that layout) and the normalisation is one fused multiply-add.
        """
        n, c, h, w = x.shape
        gamma = mix.float() @ self.gamma  # (N, C)
        beta = mix.float() @ self.beta
        channels_last = x.is_contiguous(memory_format=torch.channels_last)
        if cpu_inference(x):
            out = [F.batch_norm(x[i:i + 1], None, None, gamma[i], beta[i], True, 0.0, self.eps)
                   for i in range(n)]
            return out[0] if n == 1 else torch.cat(out)
        if channels_last and x.device.type == "cpu":
            xr = x.permute(0, 2, 3, 1).reshape(n, h * w, c).float()
            ones = xr.new_ones(n, 1, h * w)
            mean = torch.bmm(ones, xr)[:, 0] / (h * w)
            var = (torch.bmm(ones, xr * xr)[:, 0] / (h * w) - mean * mean).clamp_min(0)
        else:
            var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=0)
        scale = gamma * torch.rsqrt(var + self.eps)
        shift = beta - mean * scale
        return torch.addcmul(shift[:, :, None, None].to(x.dtype), x,
                             scale[:, :, None, None].to(x.dtype))


def _derived(conv: nn.Conv2d, kind: str, make) -> tuple[torch.Tensor, torch.Tensor]:
    """``make(weight, bias)`` cached on ``conv`` until its weights change (inference)."""
    w, b = conv.weight, conv.bias
    key = (kind, w._version, w.data_ptr(), b._version, b.data_ptr())
    cached = conv.__dict__.get("_restyle_derived", {})
    if cached.get(kind, (None,))[0] != key:
        with torch.no_grad():
            cached[kind] = (key, *make(w.detach(), b.detach()))
        conv.__dict__["_restyle_derived"] = cached
    return cached[kind][1], cached[kind][2]


def _subpixel_weights(w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3x3 convolution (cout, cin) over a nearest-2x-upsampled map as a 3x3 convolution
    over the map itself with 4 * cout outputs, one per position in each 2x2 block (output
    channel ``o * 4 + a * 2 + c`` for block row ``a``, column ``c``: pixel-shuffle order).
    High-resolution tap ``d`` in (-1, 0, 1) of block position ``a`` reads low-resolution
    offset ``floor((a + d) / 2)``."""
    cout, cin = w.shape[:2]
    out = w.new_zeros(cout, 2, 2, cin, 3, 3)
    for a in range(2):
        for c in range(2):
            for d in range(3):
                for g in range(3):
                    out[:, a, c, :, (a + d - 1) // 2 + 1, (c + g - 1) // 2 + 1] += w[:, :, d, g]
    return (out.reshape(4 * cout, cin, 3, 3).contiguous(memory_format=torch.channels_last),
            b.repeat_interleave(4))


def _space_to_depth_weights(w: torch.Tensor, b: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """A k x k convolution (cout, cin) as a convolution of the 2x2-space-to-depth map
    (``pixel_unshuffle(x, 2)``: input channel ``i * 4 + dy * 2 + dx``) with
    ``k // 2 + 1`` square kernels and 4 * cout outputs in pixel-shuffle order: output
    (2p + a, 2q + c) reads input (2p + a + u, 2q + c + v), i.e. block (p + (a + u) // 2)
    at in-block row (a + u) % 2."""
    cout, cin, k, _ = w.shape
    kk = k // 2 + 1
    out = w.new_zeros(cout, 2, 2, cin, 2, 2, kk, kk)
    for a in range(2):
        for c in range(2):
            for u in range(k):
                for v in range(k):
                    out[:, a, c, :, (a + u) % 2, (c + v) % 2, (a + u) // 2, (c + v) // 2] = \
                        w[:, :, u, v]
    return (out.reshape(4 * cout, 4 * cin, kk, kk).contiguous(memory_format=torch.channels_last),
            b.repeat_interleave(4))


def upsample2_conv3(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(reflect_pad(nearest_2x(x), 1))`` for a 3x3 ``conv`` without building the
    upsampled map: the reflection of a nearest-2x map repeats its edge, so the low-resolution
    map is edge-padded, convolved into the four positions of each 2x2 block and
    pixel-shuffled (the same numbers; on a 2-core CPU at 512 px, 13.3 -> 10.5 ms and 14.1 ->
    12.4 ms for the two stages in fp32, 7.3 -> 5.9 and 11.5 -> 6.9 ms in bf16)."""
    w, b = _derived(conv, "subpixel", _subpixel_weights)
    return F.pixel_shuffle(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), w, b), 2)


def conv_space_to_depth(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(reflect_pad(x, k // 2))`` for a k x k ``conv`` with few outputs (the last
    layer's 16 -> 3, 9x9) computed on the 2x2-space-to-depth map: the same numbers, from a
    convolution with 4x the inputs and outputs per position at a quarter of the positions,
    a shape oneDNN's kernels run far more efficiently than 3 outputs (at 512 px on a 2-core
    CPU: 43.7 -> 23.7 ms in fp32, 25.9 -> 15.4 ms in bf16)."""
    h, w = x.shape[-2:]
    x = reflect_pad(x, conv.kernel_size[0] // 2)
    odd_h, odd_w = x.shape[-2] % 2, x.shape[-1] % 2
    if odd_h or odd_w:  # an extra zero row/column: only outputs past the crop read it
        x = F.pad(x, (0, odd_w, 0, odd_h))
    weight, bias = _derived(conv, "space_to_depth", _space_to_depth_weights)
    y = F.pixel_shuffle(F.conv2d(F.pixel_unshuffle(x, 2), weight, bias), 2)
    return y[..., :h, :w]


class _Conv(nn.Module):
    """Reflection-padded convolution (stride 1 or 2)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1):
        super().__init__()
        self.pad = k // 2
        self.conv = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = reflect_pad(x, self.pad)
        return self.conv(x)


class StyleNet(nn.Module):
    """The transformation network; ``forward(image, mix)`` -> stylised image in (0, 1)."""

    def __init__(self, styles: Sequence[str], width: int = 16, blocks: int = 5):
        super().__init__()
        if not styles:
            raise RestyleError("a style network needs at least one style")
        if len(set(styles)) != len(styles):
            raise RestyleError(f"style names must be unique: {list(styles)}")
        if not 4 <= width <= 256 or not 0 <= blocks <= 32:
            raise RestyleError(f"unsupported style network shape width={width} blocks={blocks}")
        self.styles = list(styles)
        self.width, self.blocks = int(width), int(blocks)
        self.metadata: dict[str, str] = {}
        c, n = self.width, len(self.styles)
        self.down = nn.ModuleList([_Conv(3, c, 9), _Conv(c, 2 * c, 3, 2), _Conv(2 * c, 4 * c, 3, 2)])
        self.down_norm = nn.ModuleList([CondInstanceNorm(c, n), CondInstanceNorm(2 * c, n),
                                        CondInstanceNorm(4 * c, n)])
        self.res = nn.ModuleList(_Conv(4 * c, 4 * c, 3) for _ in range(2 * blocks))
        self.res_norm = nn.ModuleList(CondInstanceNorm(4 * c, n) for _ in range(2 * blocks))
        self.up = nn.ModuleList([_Conv(4 * c, 2 * c, 3), _Conv(2 * c, c, 3)])
        self.up_norm = nn.ModuleList([CondInstanceNorm(2 * c, n), CondInstanceNorm(c, n)])
        self.out = _Conv(c, 3, 9)
        self.to(memory_format=torch.channels_last)

    @property
    def n_styles(self) -> int:
        return len(self.styles)

    def norms(self) -> list[CondInstanceNorm]:
        return [*self.down_norm, *self.res_norm, *self.up_norm]

    def mix_vector(self, weights: dict[str, float] | Sequence[float] | int | str,
                   batch: int = 1) -> torch.Tensor:
        """A (batch, n_styles) mixing matrix from a style index or name, a list of
        per-style weights, or a {name: weight} dict; weights are normalised to sum to 1."""
        w = torch.zeros(self.n_styles)
        if isinstance(weights, (int, str)):
            weights = {weights: 1.0}
        if isinstance(weights, dict):
            for key, value in weights.items():
                w[self.style_index(key)] += float(value)
        else:
            if len(weights) != self.n_styles:
                raise RestyleError(f"{len(weights)} weights for {self.n_styles} styles")
            w = torch.tensor([float(v) for v in weights])
        if (w < 0).any() or not torch.isfinite(w).all() or float(w.sum()) <= 0:
            raise RestyleError("style weights must be non-negative with a positive sum")
        return (w / w.sum()).expand(batch, -1).contiguous()

    def style_index(self, key: int | str) -> int:
        if isinstance(key, int):
            if not 0 <= key < self.n_styles:
                raise RestyleError(f"style index {key} out of range (0-{self.n_styles - 1})")
            return key
        if key in self.styles:
            return self.styles.index(key)
        raise RestyleError(f"this model has no style {key!r}; its styles: "
                           f"{', '.join(self.styles)}")

    def forward(self, image: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        if h < 4 or w < 4:
            raise RestyleError(f"image of {h}x{w} is too small for the style network")
        x = image
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        sizes = []
        for conv, norm in zip(self.down, self.down_norm):
            sizes.append(x.shape[-2:])
            x = F.relu(norm(conv(x), mix))
        for k in range(self.blocks):
            y = F.relu(self.res_norm[2 * k](self.res[2 * k](x), mix))
            x = x + self.res_norm[2 * k + 1](self.res[2 * k + 1](y), mix)
        for i, (conv, norm) in enumerate(zip(self.up, self.up_norm)):
            size = tuple(sizes[2 - i])
            if cpu_inference(x) and size == (2 * x.shape[-2], 2 * x.shape[-1]):
                x = upsample2_conv3(x, conv.conv)  # the same numbers, faster
            else:
                x = conv(F.interpolate(x, size=size, mode="nearest"))
            x = F.relu(norm(x, mix))
        if cpu_inference(x) and min(x.shape[-2:]) > self.out.pad:
            return torch.sigmoid(conv_space_to_depth(x, self.out.conv).float())
        return torch.sigmoid(self.out(x).float())

    @torch.no_grad()
    def stylize(self, image: torch.Tensor, weights, bf16: bool = False) -> torch.Tensor:
        """Inference on (N, 3, H, W) RGB in [0, 1]: float32 output in [0, 1]."""
        mix = self.mix_vector(weights, image.shape[0]).to(image.device)
        with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self(image, mix).float()

    # ------------------------------------------------------------------------- files

    def save(self, path: str | Path, **metadata: Any) -> Path:
        """Float16 weights plus metadata (styles, shape, and what ``metadata`` adds)."""
        tensors = {k: v.detach().to("cpu", torch.float16).contiguous()
                   for k, v in self.state_dict().items()}
        return save_weights(tensors, path, "style network", metadata, format=FORMAT,
                            format_version=FORMAT_VERSION, styles=json.dumps(self.styles),
                            width=str(self.width), blocks=str(self.blocks))


def read_stylenet_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a style network file, without loading its weights."""
    return read_safetensors_metadata(path, FORMAT, FORMAT_VERSION, "style network")


def load_stylenet(path: str | Path) -> StyleNet:
    """A network saved by :meth:`StyleNet.save`: float32, eval mode, frozen."""
    meta = read_stylenet_metadata(path)
    try:
        net = StyleNet(json.loads(meta["styles"]), int(meta["width"]), int(meta["blocks"]))
    except (KeyError, ValueError, TypeError) as e:
        raise RestyleError(f"{path}: damaged style network metadata ({e})") from None
    from safetensors.torch import load_file
    try:
        net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()}, strict=True)
    except RuntimeError as e:
        raise RestyleError(f"{path}: the weights do not fit the network its metadata "
                           f"describes ({str(e).splitlines()[0]})") from None
    except Exception as e:
        raise RestyleError(f"{path} is damaged ({e})") from None
    net.metadata = meta
    net.requires_grad_(False)
    return net.eval()


# ----------------------------------------------------------------------------- installed models

def models_dir() -> Path:
    """``$RESTYLE_MODELS``, else the repository's ``models/`` folder."""
    env = os.environ.get(MODELS_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "models"


def installed_models(folder: str | Path | None = None) -> dict[str, Path]:
    """Style networks in the models folder, by name (the file name without .safetensors)."""
    folder = Path(folder) if folder else models_dir()
    found = {}
    if folder.is_dir():
        for p in sorted(folder.glob("*.safetensors")):
            try:
                read_stylenet_metadata(p)
            except RestyleError:
                continue
            found[p.stem] = p
    return found


def resolve_model(name_or_path: str) -> Path:
    """A model name from :func:`installed_models`, or a path to a style network file."""
    p = Path(name_or_path).expanduser()
    if p.suffix == ".safetensors" or os.sep in name_or_path:
        if not p.is_file():
            raise RestyleError(f"style network not found: {p}")
        return p
    models = installed_models()
    if name_or_path not in models:
        have = ", ".join(models) or "none installed"
        raise RestyleError(f"no style network named {name_or_path!r} (installed: {have}); "
                           f"train one with `restyle train style`")
    return models[name_or_path]


_LOADED: dict[str, tuple[tuple[int, int], StyleNet]] = {}


def get_stylenet(name_or_path: str) -> StyleNet:
    """:func:`load_stylenet` once per process (reloaded when the file changes)."""
    return load_once(_LOADED, resolve_model(name_or_path),
                     lambda f: load_stylenet(f).to(memory_format=torch.channels_last))
