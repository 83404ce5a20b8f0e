"""Distilling AdaIN into a narrow encoder and decoder (:mod:`restyle.nets.lite`).

The student (a :class:`~restyle.nets.lite.LiteAdaIN`: encoder E, decoder D) learns
from the frozen full VGG16 (the teacher T) what the AdaIN method needs, in the
spirit of Wang et al. (2020, collaborative distillation). Each step takes a batch
of photo crops x and style crops s and minimises

* reconstruction: pixel MSE(D(E(x)), x) + ``feature_weight`` x relative MSE of
  T(D(E(x))) against T(x) at relu4_1 and relu3_1 (the decoder inverts the
  student's features, and the encoder keeps what an image needs);
* AdaIN: y = D(AdaIN(E(x), E(s))) re-encoded by the teacher must have the
  teacher's AdaIN target AdaIN(T(x), T(s)) at relu4_1 (content) and the style's
  channel means and standard deviations at relu1_1 ... relu4_1 (style), weighted by
  ``adain_weight`` (``style_weight`` inside);
* embedding: a 1x1 convolution maps E(x) to T(x) at relu4_1 (relative MSE,
  ``embed_weight``; Wang et al.'s linear embedding loss), so the student's
  features stay a linear image of the teacher's.

The student starts as the teacher pruned (largest L1 filters): the encoder from
VGG16, the decoder from the packaged relu4_1 decoder when there is one. Style
crops come from the paintings in ``<data>/styles`` (and any extra folders), half
of them with their hues rotated, so the student meets more palettes than the
paintings have. Runs are resumable, logged and time-boxed exactly like decoder
training (:func:`~restyle.nets.training.training_loop`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__, imaging
from ..backbone import get_vgg
from ..errors import RestyleError
from ..losses import relative_mse
from ..optimize import resolve_precision
from ..params import make, param
from ..transforms import adain, channel_stats
from .decoder import default_decoder_path, load_decoder
from .lite import LEVEL, LiteAdaIN, prune_decoder, prune_vgg
from .train_decoder import _style_distance
from .training import (RandomCrops, center_square, check_run_args,
                       data_root, image_files, load_uint8, open_run, optimizer_step, psnr,
                       resolve_device, restore_run, save_checkpoint, training_loop,
                       training_photos, warmup_cosine)

LOG = "log.jsonl"
FEATURE_LAYERS = ["relu4_1", "relu3_1"]
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]


@dataclass
class LiteTraining:
    """The settings that define a distillation run (a resumed run must keep them)."""

    width: float = param(0.375, "channel fraction of VGG16 the student keeps", min=0.125,
                         max=1.0)
    batch: int = param(8, "crops per step", min=1, max=512)
    crop: int = param(128, "crop size in pixels", min=32, max=2048)
    lr: float = param(1e-3, "peak Adam learning rate", min=1e-7, max=1.0)
    warmup: int = param(100, "linear learning-rate warmup steps (at most a tenth of the run)",
                        min=0)
    seed: int = param(0, "random seed: crops, hue rotations", min=0)
    feature_weight: float = param(0.1, "relative feature loss of the reconstruction",
                                  min=0.0)
    adain_weight: float = param(0.2, "weight of the AdaIN content and style losses", min=0.0)
    style_weight: float = param(1.0, "mean/std style distance inside the AdaIN losses", min=0.0)
    embed_weight: float = param(0.1, "linear embedding loss (student relu4_1 to teacher's)",
                                min=0.0)
    hue_rotate: float = param(0.5, "fraction of style crops whose hues are rotated at random",
                              min=0.0, max=1.0)


def rotate_hue(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma (YIQ I/Q plane) of each image by its angle (radians); luminance kept."""
    yiq = imaging.rgb_to_yiq(images)
    c, s = angles.cos().view(-1, 1, 1), angles.sin().view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    rotated = torch.stack([yiq[:, 0], c * i - s * q, s * i + c * q], 1)
    return imaging.yiq_to_rgb(rotated).clamp(0, 1)


class LiteRun:
    """One distillation run in a folder (data, teacher, student, optimizer, state)."""

    def __init__(self, cfg: LiteTraining, out: Path, state: dict | None, total: int | None,
                 content_dir: Path, style_dirs: Sequence[Path], holdout: int, eval_size: int,
                 precision: str, device: str, teacher_decoder: str | Path | None):
        self.cfg, self.out, self.total = cfg, out, total
        self.dev = resolve_device(device)
        self.bf16 = resolve_precision(precision, self.dev)

        data = training_photos(content_dir, holdout, cfg.crop, eval_size, self.dev)
        self.train_set, self.eval_batch = data.train_set, data.eval_batch
        train_photos = data.train_photos
        style_files = [f for d in style_dirs for f in image_files(d, "style image")]
        style_images = [load_uint8(p, "style image", max_short_side=512) for p in style_files]
        self.styles = RandomCrops(style_images, cfg.crop)
        self.eval_style = center_square(style_images[0], eval_size).unsqueeze(0).to(self.dev)
        self.data_note = (f"{data.note}, {len(style_files)} style images "
                          f"({', '.join(p.stem for p in style_files)})")

        self.vgg = get_vgg().to(self.dev)
        with torch.random.fork_rng(devices=[]):  # the seed makes the weights, nothing global
            torch.manual_seed(cfg.seed)
            self.model = LiteAdaIN(cfg.width)
            self.embed = nn.Conv2d(self.model.encoder.out_channels, 512, 1)
        init_note = "random decoder"
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.embed.load_state_dict(state["embed"])
            init_note = state.get("init", init_note)
        else:
            kept = prune_vgg(self.model.encoder, self.vgg)
            teacher_path = (Path(teacher_decoder) if teacher_decoder
                            else default_decoder_path(LEVEL))
            if teacher_path.exists():
                prune_decoder(self.model.decoder, load_decoder(teacher_path, LEVEL), kept)
                init_note = f"pruned from {teacher_path.name}"
            sample = torch.stack([center_square(im, eval_size) for im in train_photos[:32]])
            with torch.no_grad():
                self.model.decoder.feature_scale.fill_(self.feature_rms(sample))
        self.init_note = init_note
        self.model.to(self.dev, memory_format=torch.channels_last).train()
        self.embed.to(self.dev)
        self.opt = torch.optim.Adam(list(self.model.parameters()) + list(self.embed.parameters()),
                                    lr=cfg.lr)
        restore_run(self, state, cfg.seed, out / LOG, lambda: {
            "config": asdict(cfg), "total_steps": total, "init": init_note,
            "feature_scale": float(self.model.decoder.feature_scale),
            "train_photos": len(train_photos), "styles": [p.name for p in style_files],
            "held_out": data.held_out, "params": self.params,
            "bf16": self.bf16, "device": str(self.dev), "restyle": __version__})

    @property
    def weights_file(self) -> Path:
        return self.out / "adain_lite.safetensors"

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @staticmethod
    def describe_step(r: dict) -> str:
        return (f"loss {r['loss']:.4f} (pixel {r['pixel']:.4f}, content {r['content']:.3f}, "
                f"style {r['style']:.3f}, embed {r['embed']:.3f})")

    @staticmethod
    def describe_eval(e: dict) -> str:
        return (f"step {e['step']}: held-out PSNR {e['psnr']:.2f} dB, AdaIN content "
                f"{e['adain_content']:.3f} style {e['adain_style']:.3f}")

    def autocast(self):
        return torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16)

    def teacher(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        with self.autocast():
            return self.vgg(images, layers)

    def student(self, images: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model.encoder.features(images)

    def decode(self, features: torch.Tensor, size) -> torch.Tensor:
        with self.autocast():
            return self.model.decoder(features, size)

    @torch.no_grad()
    def feature_rms(self, images: torch.Tensor) -> float:
        squares = [self.student(images[k:k + 8].to(self.dev)).float().pow(2).mean()
                   for k in range(0, len(images), 8)]
        return float(torch.stack(squares).mean().sqrt())

    def sample_styles(self) -> torch.Tensor:
        cfg = self.cfg
        s = self.styles.sample(cfg.batch, self.gen)
        u = torch.rand(cfg.batch, 2, generator=self.gen, dtype=torch.float64)
        rotate = u[:, 0] < cfg.hue_rotate
        if bool(rotate.any()):
            angles = (u[:, 1] * 2 * math.pi).float()
            s[rotate] = rotate_hue(s[rotate], angles[rotate])
        return s.to(self.dev)

    def step(self) -> dict[str, float]:
        cfg = self.cfg
        for group in self.opt.param_groups:
            group["lr"] = warmup_cosine(self.step_no, self.total, cfg.lr, cfg.warmup)
        x = self.train_set.sample(cfg.batch, self.gen).to(self.dev)
        s = self.sample_styles()
        with torch.no_grad():
            tx = self.teacher(x, STYLE_LAYERS)
            ts = self.teacher(s, STYLE_LAYERS)
            target = adain(tx[LEVEL], ts[LEVEL])
            stats = {n: channel_stats(ts[n]) for n in STYLE_LAYERS}
        ex, es = self.student(x), self.student(s)
        # reconstruction
        y = self.decode(ex, x.shape[-2:])
        again = self.teacher(y, FEATURE_LAYERS)
        parts = {"pixel": F.mse_loss(y.float(), x),
                 "feature": sum(relative_mse(again[n], tx[n]) for n in FEATURE_LAYERS)
                 / len(FEATURE_LAYERS)}
        # AdaIN in the student's space, judged in the teacher's
        styled = self.decode(adain(ex.float(), es.float()), x.shape[-2:])
        fo = self.teacher(styled, STYLE_LAYERS)
        parts["content"] = relative_mse(fo[LEVEL], target)
        parts["style"] = _style_distance(fo, stats, STYLE_LAYERS)
        # linear embedding
        parts["embed"] = relative_mse(self.embed(ex.float()), tx[LEVEL])
        loss = (parts["pixel"] + cfg.feature_weight * parts["feature"]
                + cfg.adain_weight * (parts["content"] + cfg.style_weight * parts["style"])
                + cfg.embed_weight * parts["embed"])
        return optimizer_step(self, loss, parts)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Held-out PSNR of the reconstruction; AdaIN content and style distances (judged by
        the teacher) of the held-out photos in the first style."""
        size = self.eval_batch.shape[-2:]
        self.model.eval()
        ex = self.student(self.eval_batch).float()
        values = psnr(self.decode(ex, size), self.eval_batch)
        es = self.student(self.eval_style).float()
        styled = self.decode(adain(ex, es), size).float().clamp(0, 1)
        tx = self.teacher(self.eval_batch, [LEVEL])[LEVEL]
        ts = self.teacher(self.eval_style, STYLE_LAYERS)
        fo = self.teacher(styled, STYLE_LAYERS)
        stats = {n: channel_stats(ts[n]) for n in STYLE_LAYERS}
        result = {"psnr": round(float(values.mean()), 3),
                  "psnr_each": [round(float(v), 3) for v in values],
                  "adain_content": round(float(relative_mse(fo[LEVEL], adain(tx, ts[LEVEL]))), 5),
                  "adain_style": round(float(_style_distance(fo, stats, STYLE_LAYERS)), 5)}
        self.model.train()
        return result

    def save_weights(self, path: Path) -> Path:
        return self.model.save(path, steps=self.step_no, total_steps=self.total,
                               train_seconds=round(self.train_seconds), config=asdict(self.cfg),
                               heldout=self.last_eval or {}, train_data=self.data_note,
                               init=self.init_note, teacher_weights=self.vgg.source,
                               restyle=__version__)

    def checkpoint(self) -> None:
        save_checkpoint(self, model=self.model.state_dict(), embed=self.embed.state_dict(),
                        init=self.init_note)


def train_lite(out_dir: str | Path, minutes: float | None = None, steps: int | None = None,
               resume: bool = True, *, data_dir: str | Path | None = None,
               style_dirs: Sequence[str | Path] | None = None, export: str | Path | None = None,
               teacher_decoder: str | Path | None = None, checkpoint_minutes: float = 5.0,
               eval_every: int = 250, eval_size: int = 256, holdout: int = 4,
               log_every: int = 10, precision: str = "auto", device: str = "auto",
               stop_at_step: int | None = None, echo: Callable[[str], None] | None = print,
               **settings) -> dict:
    """Train (or resume) a distilled AdaIN model in ``out_dir``; returns a summary dict.

    ``steps``/``minutes``/``resume``/``stop_at_step``/``export`` work as in
    :func:`~restyle.nets.train_decoder.train_decoder`. Style images come from
    ``style_dirs`` (default ``<data>/styles``); the student's decoder starts pruned
    from ``teacher_decoder`` (default: the packaged relu4_1 decoder, if present).
    Other ``settings``: see :class:`LiteTraining`.
    """
    cfg = make(LiteTraining, **settings)
    say = echo or (lambda _msg: None)
    export_path = check_run_args(steps, minutes, precision, export)
    if holdout < 1:
        raise RestyleError("holdout must be at least 1 (the photos PSNR is measured on)")
    root = data_root()
    content_dir = Path(data_dir) if data_dir else root / "train" / "content"
    dirs = [Path(d) for d in style_dirs] if style_dirs else [root / "styles"]
    with open_run(out_dir, asdict(cfg), steps, minutes, resume, say) as (out, state, total):
        run = LiteRun(cfg, out, state, total, content_dir, dirs, holdout, eval_size, precision,
                      device, teacher_decoder)
        say(f"{'resuming' if state else 'starting'} distilled AdaIN (width {cfg.width:g}, "
            f"{run.params / 1e6:.2f} M params, {run.init_note}) in {out} at step {run.step_no}"
            f"{f' of {total}' if total else ''} ({'bf16' if run.bf16 else 'fp32'}, {run.dev})")
        summary = training_loop(run, minutes, stop_at_step, checkpoint_minutes, eval_every,
                                log_every, export_path, say)
        summary["psnr"] = (summary["last_eval"] or {}).get("psnr")
        return summary
