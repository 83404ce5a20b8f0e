"""Training a :class:`~restyle.nets.decoder.Decoder`: resumable, logged, time-boxed.

Each step takes a batch of random crops of the training photos, encodes them
with the frozen VGG16 (bfloat16 autocast where the CPU has it), decodes the
features at ``level`` and minimises

    pixel MSE(output, photo) + feature_weight * mean_l relative_mse(VGG_l(output), VGG_l(photo))

over l = ``level`` and the level one block shallower (the feature term keeps
edges and textures that MSE alone blurs). With ``adain_loss`` the decoder also
learns to decode AdaIN-shifted features t = adain(content, style), as the AdaIN
method needs (Huang & Belongie 2017): the output re-encoded should have the
features t at ``level`` and the style's channel means and standard deviations at
relu1_1 ... ``level``:

    + adain_weight * (relative_mse(VGG(dec(t)), t) + style_weight * mean/std distance)

Adam with linear warmup and cosine decay over the planned steps. Everything a
run needs to continue bit for bit (weights, optimizer, step, random generator,
log position) is checkpointed atomically into ``out_dir`` every few minutes and
when the run stops; running the same command again resumes it.

Files in ``out_dir``: ``checkpoint.pt`` (resume state), ``log.jsonl`` (one record
per ``log_every`` steps and one per evaluation) and ``decoder_<level>.safetensors``
(the float16 weights at the last checkpoint).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .. import __version__
from ..backbone import get_vgg
from ..errors import RestyleError
from ..losses import relative_mse
from ..optimize import resolve_precision
from ..params import make, param
from ..transforms import adain, channel_stats
from .decoder import LEVELS, Decoder, check_level, load_decoder
from .training import (RandomCrops, center_square, check_run_args,
                       data_root, image_files, load_uint8, open_run, optimizer_step, psnr,
                       resolve_device, restore_run, save_checkpoint, training_loop,
                       training_photos, warmup_cosine)

LOG = "log.jsonl"


@dataclass
class DecoderTraining:
    """The settings that define a decoder training run (a resumed run must keep them)."""

    level: str = param("relu4_1", "the VGG16 layer whose features the decoder inverts",
                       choices=LEVELS)
    batch: int = param(8, "crops per step", min=1, max=512)
    crop: int = param(128, "crop size in pixels", min=16, max=2048)
    lr: float = param(1e-3, "peak Adam learning rate", min=1e-7, max=1.0)
    warmup: int = param(200, "linear learning-rate warmup steps (at most a tenth of the run)",
                        min=0)
    seed: int = param(0, "random seed: initial weights, crops", min=0)
    width_mult: float = param(1.0, "decoder channel-width multiplier", min=0.125, max=8.0)
    feature_weight: float = param(0.1, "weight of the relative feature loss (output re-encoded "
                                  "vs input, at the level and one block shallower)", min=0.0)
    adain_loss: bool = param(False, "also train on AdaIN-stylised features against the style "
                             "images (for the AdaIN method)")
    adain_weight: float = param(0.1, "weight of the AdaIN losses", min=0.0)
    style_weight: float = param(1.0, "mean/std style distance inside the AdaIN losses", min=0.0)


def _layers(level: str) -> tuple[list[str], list[str]]:
    """(feature-loss layers, AdaIN style layers) for a decoder level."""
    block = check_level(level)
    feature = [level] if block == 1 else [level, f"relu{block - 1}_1"]
    style = [f"relu{b}_1" for b in range(1, block + 1)]
    return feature, style


def _style_distance(out_feats: dict, style_stats: dict, layers: list[str]) -> torch.Tensor:
    """Mean over layers of the relative distances of channel means and stds."""
    total = torch.zeros(())
    for name in layers:
        mean, std = channel_stats(out_feats[name])
        smean, sstd = style_stats[name]
        total = total + relative_mse(mean, smean) + relative_mse(std, sstd)
    return total / len(layers)


class DecoderRun:
    """One training run in a folder: data, encoder, decoder, optimizer and their state.

    Built fresh or from the folder's checkpoint; :meth:`step`, :meth:`evaluate` and
    :meth:`checkpoint` are driven by :func:`train_decoder`.
    """

    def __init__(self, cfg: DecoderTraining, out: Path, state: dict | None, total: int | None,
                 content_dir: Path, style_dir: Path | None, holdout: int, eval_size: int,
                 precision: str, device: str, init_from: str | Path | None = None):
        self.cfg, self.out, self.total = cfg, out, total
        self.dev = resolve_device(device)
        self.bf16 = resolve_precision(precision, self.dev)
        self.feat_layers, self.style_layers = _layers(cfg.level)

        data = training_photos(content_dir, holdout, cfg.crop, eval_size, self.dev)
        self.train_set, self.eval_batch = data.train_set, data.eval_batch
        train_photos = data.train_photos
        self.styles = self.eval_style = None
        if cfg.adain_loss:
            style_images = [load_uint8(p, "style image", max_short_side=512)
                            for p in image_files(style_dir, "style image")]
            self.styles = RandomCrops(style_images, cfg.crop)
            self.eval_style = center_square(style_images[0], eval_size).unsqueeze(0).to(self.dev)
        self.data_note = data.note

        self.vgg = get_vgg().to(self.dev)
        if state is not None:
            self.dec = Decoder(cfg.level, cfg.width_mult, state["feature_scale"])
            self.dec.load_state_dict(state["model"])
        elif init_from is not None:
            src = load_decoder(init_from)
            if abs(src.width_mult - cfg.width_mult) > 1e-9:
                raise RestyleError(f"{init_from} has width {src.width_mult}, the run "
                                   f"asks for {cfg.width_mult}")
            if src.level == cfg.level:
                self.dec = src.requires_grad_(True)
            elif check_level(src.level) < check_level(cfg.level):
                # a deeper decoder grows from a shallower one: its tail is that decoder
                sample = torch.stack([center_square(im, eval_size) for im in train_photos[:32]])
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(cfg.seed)
                    self.dec = Decoder(cfg.level, cfg.width_mult, self.feature_rms(sample))
                self.dec.graft(src)
            else:
                raise RestyleError(f"{init_from} decodes {src.level} features, deeper than "
                                   f"{cfg.level}: a decoder can start from its own level's "
                                   f"weights or grow from a shallower level's")
        else:
            sample = torch.stack([center_square(im, eval_size) for im in train_photos[:32]])
            with torch.random.fork_rng(devices=[]):  # the seed makes the weights, nothing global
                torch.manual_seed(cfg.seed)
                self.dec = Decoder(cfg.level, cfg.width_mult, self.feature_rms(sample))
        self.dec.to(self.dev, memory_format=torch.channels_last).train()
        self.opt = torch.optim.Adam(self.dec.parameters(), lr=cfg.lr)
        restore_run(self, state, cfg.seed, out / LOG, lambda: {
            "config": asdict(cfg), "total_steps": total,
            "init_from": str(init_from) if init_from else None,
            "feature_scale": float(self.dec.feature_scale), "train_photos": len(train_photos),
            "held_out": data.held_out, "params": self.params,
            "bf16": self.bf16, "device": str(self.dev), "restyle": __version__})

    @property
    def weights_file(self) -> Path:
        return self.out / f"decoder_{self.cfg.level}.safetensors"

    @staticmethod
    def describe_step(r: dict) -> str:
        return f"loss {r['loss']:.4f} (pixel {r['pixel']:.4f}, feature {r['feature']:.3f})"

    @staticmethod
    def describe_eval(e: dict) -> str:
        return (f"step {e['step']}: held-out PSNR {e['psnr']:.2f} dB"
                + (f", AdaIN content {e['adain_content']:.3f} style {e['adain_style']:.3f}"
                   if "adain_style" in e else ""))

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.dec.parameters())

    def encode(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.vgg(images, layers)

    def decode(self, features: torch.Tensor, size) -> torch.Tensor:
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.dec(features, size)

    @torch.no_grad()
    def feature_rms(self, images: torch.Tensor) -> float:
        """RMS of the encoder's features at the level on ``images``: the decoder's input scale."""
        squares = [self.encode(images[k:k + 8].to(self.dev), [self.cfg.level])[self.cfg.level]
                   .float().pow(2).mean() for k in range(0, len(images), 8)]
        return float(torch.stack(squares).mean().sqrt())

    def step(self) -> dict[str, float]:
        """One optimizer step; returns the loss and its parts."""
        cfg, level = self.cfg, self.cfg.level
        for group in self.opt.param_groups:
            group["lr"] = warmup_cosine(self.step_no, self.total, cfg.lr, cfg.warmup)
        x = self.train_set.sample(cfg.batch, self.gen).to(self.dev)
        s = self.styles.sample(cfg.batch, self.gen).to(self.dev) if self.styles else None
        with torch.no_grad():
            feats = self.encode(x, sorted(set(self.feat_layers) | set(self.style_layers)
                                          if s is not None else self.feat_layers))
        y = self.decode(feats[level], x.shape[-2:])
        again = self.encode(y, self.feat_layers)
        parts = {"pixel": F.mse_loss(y.float(), x),
                 "feature": sum(relative_mse(again[n], feats[n]) for n in self.feat_layers)
                 / len(self.feat_layers)}
        loss = parts["pixel"] + cfg.feature_weight * parts["feature"]
        if s is not None:
            with torch.no_grad():
                sf = self.encode(s, self.style_layers)
                target = adain(feats[level], sf[level])
                stats = {n: channel_stats(sf[n]) for n in self.style_layers}
            fo = self.encode(self.decode(target, x.shape[-2:]), self.style_layers)
            parts["adain_content"] = relative_mse(fo[level], target)
            parts["adain_style"] = _style_distance(fo, stats, self.style_layers)
            loss = loss + cfg.adain_weight * (parts["adain_content"]
                                              + cfg.style_weight * parts["adain_style"])
        return optimizer_step(self, loss, parts)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """PSNR of the held-out photos decoded from their own features; with the AdaIN
        loss also the content and style distances of one AdaIN-stylised decoding."""
        level, size = self.cfg.level, self.eval_batch.shape[-2:]
        self.dec.eval()
        feats = self.encode(self.eval_batch, [level])[level]
        values = psnr(self.decode(feats, size), self.eval_batch)
        result = {"psnr": round(float(values.mean()), 3),
                  "psnr_each": [round(float(v), 3) for v in values]}
        if self.eval_style is not None:
            sf = self.encode(self.eval_style, self.style_layers)
            target = adain(feats, sf[level])
            fo = self.encode(self.decode(target, size).float().clamp(0, 1), self.style_layers)
            stats = {n: channel_stats(sf[n]) for n in self.style_layers}
            result["adain_content"] = round(float(relative_mse(fo[level], target)), 5)
            result["adain_style"] = round(float(_style_distance(fo, stats, self.style_layers)), 5)
        self.dec.train()
        return result

    def save_weights(self, path: Path) -> Path:
        """The float16 decoder file, with what it was trained on and for how long."""
        return self.dec.save(path, steps=self.step_no, total_steps=self.total,
                             train_seconds=round(self.train_seconds), config=asdict(self.cfg),
                             heldout_psnr=(self.last_eval or {}).get("psnr"),
                             train_data=self.data_note, encoder_weights=self.vgg.source,
                             restyle=__version__)

    def checkpoint(self) -> None:
        """Everything needed to continue exactly, written atomically; plus the weights file."""
        save_checkpoint(self, model=self.dec.state_dict(),
                        feature_scale=float(self.dec.feature_scale))


def train_decoder(level: str, out_dir: str | Path, minutes: float | None = None,
                  steps: int | None = None, batch: int = 8, crop: int = 128, lr: float = 1e-3,
                  seed: int = 0, style_dir: str | Path | None = None, resume: bool = True, *,
                  data_dir: str | Path | None = None, export: str | Path | None = None,
                  checkpoint_minutes: float = 5.0, eval_every: int = 250, eval_size: int = 256,
                  holdout: int = 4, log_every: int = 10, precision: str = "auto",
                  device: str = "auto", stop_at_step: int | None = None,
                  init_from: str | Path | None = None,
                  echo: Callable[[str], None] | None = print, **settings) -> dict:
    """Train (or resume training) a decoder for ``level``; returns a summary dict.

    ``steps`` is the planned length of the whole run (the cosine schedule's end);
    ``minutes`` is the time budget of this call. With ``minutes`` alone, the run's
    length is planned from the speed of its first steps to fill the budget. A run
    with a checkpoint in ``out_dir`` is resumed when ``resume`` (its settings must
    match; ``steps`` may be raised to extend it); otherwise it starts over.
    ``stop_at_step`` ends this call after that step, checkpointing (for tests and
    for splitting a run by hand). ``init_from`` starts a *new* run from the weights of
    an exported decoder (e.g. to continue on a machine without the checkpoint; the
    optimizer and schedule start fresh). Other ``settings``: see :class:`DecoderTraining`.

    Training photos come from ``data_dir`` (default ``<data>/train/content``), style
    images for ``adain_loss`` from ``style_dir`` (``<data>/styles``), where
    ``<data>`` is ``$RESTYLE_DATA`` or ``../shared/data``. ``holdout`` photos, spread
    over the sorted list, are kept out of training and measure PSNR at ``eval_size``
    every ``eval_every`` steps. When the call ends the weights are written as float16
    to ``out_dir/decoder_<level>.safetensors`` and, if given, to ``export``.
    """
    cfg = make(DecoderTraining, level=level, batch=batch, crop=crop, lr=lr, seed=seed, **settings)
    say = echo or (lambda _msg: None)
    export_path = check_run_args(steps, minutes, precision, export)
    if holdout < 1:
        raise RestyleError("holdout must be at least 1 (the photos PSNR is measured on)")
    root = data_root()
    content_dir = Path(data_dir) if data_dir else root / "train" / "content"
    styles_dir = (Path(style_dir) if style_dir else root / "styles") if cfg.adain_loss else None
    with open_run(out_dir, asdict(cfg), steps, minutes, resume, say, init_from) as (
            out, state, total):
        run = DecoderRun(cfg, out, state, total, content_dir, styles_dir, holdout, eval_size,
                         precision, device, init_from)
        say(f"{'resuming' if state else 'starting'} {cfg.level} decoder in {out} at step "
            f"{run.step_no}{f' of {total}' if total else ''} (feature scale "
            f"{float(run.dec.feature_scale):.2f}, {run.params / 1e6:.2f} M params, "
            f"{'bf16' if run.bf16 else 'fp32'}, {run.dev})")
        summary = training_loop(run, minutes, stop_at_step, checkpoint_minutes, eval_every,
                                log_every, export_path, say)
        summary["psnr"] = (summary["last_eval"] or {}).get("psnr")
        return summary
