"""Training an :class:`~restyle.nets.mgan.MGAN` for one painting (Li & Wand 2016).

Each step draws a batch of photo crops x and crops s of the painting (at
``style_size``, so the strokes keep their size), and

1. updates the discriminator D, a small convolutional network on the encoder's
   ``disc_layer`` features that scores every position (a neural patch), with the
   hinge loss mean(relu(1 - D(E(s)))) + mean(relu(1 + D(E(y)))) for y = G(x);
2. updates the decoder G (the encoder E stays frozen) with

       loss = content_weight * relative MSE(E(y), E(x)) at relu4_1
              + adv_weight * -mean(D(E(y)))          (fool the patch critic)
              + tv_weight * TV(y)

The decoder starts as adain-lite's (it inverts E's relu4_1 features), so at step 0
the output is the photo and the critic pulls its patches towards the painting's.
Runs are resumable, logged and time-boxed like every trainer
(:func:`~restyle.nets.training.training_loop`); the held-out photos are judged by
the full VGG16 (:class:`~restyle.nets.training.Judge`: Gram distance to the painting,
content distance to the photo), and a preview sheet is written at each evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__, imaging
from ..errors import RestyleError
from ..losses import relative_mse, total_variation
from ..optimize import resolve_precision
from ..params import make, param
from .lite import LEVEL, TAPS, default_lite_path, load_lite
from .mgan import MGAN, thumbnail
from .training import (Judge, RandomCrops, check_run_args, data_root, load_uint8, open_run,
                       optimizer_step, resolve_device, restore_run, save_checkpoint,
                       training_loop, training_photos, warmup_cosine)

LOG = "log.jsonl"


@dataclass
class MGANTraining:
    """The settings that define an MGAN training run (a resumed run keeps them)."""

    batch: int = param(4, "crops per step", min=1, max=512)
    crop: int = param(128, "crop size in pixels", min=32, max=2048)
    style_size: int = param(512, "long side of the painting its crops are taken from (the "
                            "strokes' size)", min=64, max=4096)
    lr: float = param(2e-4, "peak Adam learning rate of the decoder", min=1e-7, max=1.0)
    disc_lr: float = param(2e-4, "Adam learning rate of the discriminator", min=1e-7, max=1.0)
    warmup: int = param(50, "linear learning-rate warmup steps", min=0)
    content_weight: float = param(1.0, "relative content loss at the encoder's relu4_1",
                                  min=0.0)
    adv_weight: float = param(0.1, "adversarial (patch critic) loss weight", min=0.0)
    tv_weight: float = param(0.0, "total-variation weight", min=0.0)
    disc_layer: str = param("relu3_1", "encoder layer the patch discriminator reads",
                            choices=TAPS)
    disc_width: int = param(64, "channels of the discriminator", min=4, max=1024)
    seed: int = param(0, "random seed: discriminator weights, crops", min=0)


class PatchDiscriminator(nn.Module):
    """Scores every position of a feature map: real painting patch (> 0) or not (< 0).

    Two 3x3 convolutions and a 1x1 one with leaky ReLUs, spectrally normalised (a stable
    critic for the hinge loss); on relu3_1 each score sees about a 56 px patch."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__()
        #: the features are divided by this (their RMS on the painting, set before training)
        self.register_buffer("scale", torch.tensor(1.0))
        sn = nn.utils.parametrizations.spectral_norm
        self.net = nn.Sequential(sn(nn.Conv2d(channels, width, 3, padding=1)),
                                 nn.LeakyReLU(0.2),
                                 sn(nn.Conv2d(width, width, 3, padding=1)),
                                 nn.LeakyReLU(0.2),
                                 sn(nn.Conv2d(width, 1, 1)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features.float() / self.scale)


class MGANRun:
    """One MGAN training run in a folder (see :func:`train_mgan`)."""

    def __init__(self, cfg: MGANTraining, out: Path, state: dict | None, total: int | None,
                 style_file: Path, content_dir: Path, holdout: int, eval_size: int,
                 precision: str, device: str, lite_path: Path):
        self.cfg, self.out, self.total = cfg, out, total
        self.dev = resolve_device(device)
        self.bf16 = resolve_precision(precision, self.dev)
        data = training_photos(content_dir, holdout, cfg.crop, eval_size, self.dev)
        self.train_set, self.eval_batch, self.held_out = (data.train_set, data.eval_batch,
                                                          data.held_out)
        self.style_file = style_file
        painting = imaging.load_image(style_file, "style image")
        self.thumb = thumbnail(painting)
        self.styles = RandomCrops([load_uint8(style_file, "style image",
                                              max_short_side=self._short_side(painting))],
                                  cfg.crop)
        self.data_note = f"{data.note}, crops of {style_file.name} at {cfg.style_size} px"

        self.model = MGAN(load_lite(lite_path).width)
        self.model.requires_grad_(True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.disc = PatchDiscriminator(self.model.encoder.channels[TAPS.index(
                cfg.disc_layer)], cfg.disc_width)
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.disc.load_state_dict(state["disc"])
        else:
            self.model.load_state_dict(load_lite(lite_path).state_dict())
            with torch.no_grad():  # the critic reads features of unit RMS
                sample = self.styles.sample(8, torch.Generator().manual_seed(cfg.seed))
                f = self.model.encoder.taps(sample, [cfg.disc_layer])[cfg.disc_layer]
                self.disc.scale.fill_(float(f.pow(2).mean().sqrt().clamp_min(1e-6)))
        self.model.encoder.requires_grad_(False)
        self.model.to(self.dev, memory_format=torch.channels_last).train()
        self.model.encoder.eval()
        self.disc.to(self.dev).train()
        self.opt = torch.optim.Adam(self.model.decoder.parameters(), lr=cfg.lr,
                                    betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr,
                                      betas=(0.5, 0.999))
        if state is not None:
            self.opt_d.load_state_dict(state["optimizer_d"])
        self.lite_note = str(lite_path.name)
        self.judge = Judge([style_file], self.eval_batch, eval_size, self.dev)
        restore_run(self, state, cfg.seed, out / LOG, lambda: {
            "config": asdict(cfg), "total_steps": total, "style": style_file.name,
            "init": self.lite_note, "held_out": data.held_out, "params": self.params,
            "bf16": self.bf16, "device": str(self.dev), "restyle": __version__})

    def _short_side(self, painting) -> int:
        """The painting's short side once its long side is ``style_size``."""
        w, h = imaging.fit_size(*painting.size, self.cfg.style_size)
        return max(self.cfg.crop, min(w, h))

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.decoder.parameters())

    @property
    def weights_file(self) -> Path:
        return self.out / "mgan.safetensors"

    @staticmethod
    def describe_step(r: dict) -> str:
        return (f"loss {r['loss']:.4f} (content {r['content']:.3f}, adv {r['adv']:.3f}, "
                f"critic {r['critic']:.3f}, real {r['real']:.2f} / fake {r['fake']:.2f})")

    @staticmethod
    def describe_eval(e: dict) -> str:
        return (f"step {e['step']}: held-out VGG16 judge: content {e['judge_content']:.3f}, "
                f"Gram {e['judge_gram']:.4f}")

    def autocast(self):
        return torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16)

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast():
            return self.model.encoder.taps(images, sorted({LEVEL, self.cfg.disc_layer}))

    def step(self) -> dict[str, float]:
        cfg = self.cfg
        lr = warmup_cosine(self.step_no, self.total, 1.0, cfg.warmup)
        for opt, peak in ((self.opt, cfg.lr), (self.opt_d, cfg.disc_lr)):
            for group in opt.param_groups:
                group["lr"] = lr * peak
        x = self.train_set.sample(cfg.batch, self.gen).to(self.dev)
        s = self.styles.sample(cfg.batch, self.gen).to(self.dev)
        with torch.no_grad():
            fx = self.encode(x)
            fs = self.encode(s)[cfg.disc_layer]
        with self.autocast():
            y = self.model.decoder(fx[LEVEL], x.shape[-2:])
        fy = self.encode(y)
        # the critic: painting patches up, generated patches down (hinge)
        real, fake = self.disc(fs), self.disc(fy[cfg.disc_layer].detach())
        critic = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        if not torch.isfinite(critic):
            raise FloatingPointError(f"the critic's loss became {float(critic)} at step "
                                     f"{self.step_no + 1}; lower --disc-lr")
        self.opt_d.zero_grad(set_to_none=True)
        critic.backward()
        self.opt_d.step()
        # the generator
        parts = {"content": relative_mse(fy[LEVEL], fx[LEVEL]),
                 "adv": -self.disc(fy[cfg.disc_layer]).mean()}
        loss = cfg.content_weight * parts["content"] + cfg.adv_weight * parts["adv"]
        if cfg.tv_weight:
            parts["tv"] = total_variation(y.float())
            loss = loss + cfg.tv_weight * parts["tv"]
        parts.update(critic=critic.detach(), real=real.detach().mean(),
                     fake=fake.detach().mean())
        self.disc.requires_grad_(False)  # the generator's step leaves the critic alone
        try:
            return optimizer_step(self, loss, parts)
        finally:
            self.disc.requires_grad_(True)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """The held-out photos stylised: the VGG16 judge's distances, and a preview sheet
        (photos above, outputs below)."""
        self.model.decoder.eval()
        with self.autocast():
            y = self.model(self.eval_batch).float().clamp(0, 1)
        self.model.decoder.train()
        content, gram = self.judge(y, 0)
        sheet = torch.cat([torch.cat(list(self.eval_batch.cpu()), 2),
                           torch.cat(list(y.cpu()), 2)], 1)
        imaging.save_image(sheet.unsqueeze(0), self.out / "preview.png", overwrite=True)
        return {"judge_content": round(content, 5), "judge_gram": round(gram, 5)}

    def save_weights(self, path: Path) -> Path:
        return self.model.save(path, steps=self.step_no, total_steps=self.total,
                               train_seconds=round(self.train_seconds), config=asdict(self.cfg),
                               style=self.style_file.stem, style_file=self.style_file.name,
                               thumbnail=[round(float(v), 3) for v in self.thumb.flatten()],
                               heldout=self.last_eval or {}, train_data=self.data_note,
                               init=self.lite_note, restyle=__version__)

    def checkpoint(self) -> None:
        save_checkpoint(self, model=self.model.state_dict(), disc=self.disc.state_dict(),
                        optimizer_d=self.opt_d.state_dict())


def train_mgan(style: str | Path, out_dir: str | Path, minutes: float | None = None,
               steps: int | None = None, resume: bool = True, *,
               data_dir: str | Path | None = None, export: str | Path | None = None,
               lite: str | Path | None = None, checkpoint_minutes: float = 5.0,
               eval_every: int = 250, eval_size: int = 256, holdout: int = 4,
               log_every: int = 10, precision: str = "auto", device: str = "auto",
               stop_at_step: int | None = None, echo: Callable[[str], None] | None = print,
               **settings) -> dict:
    """Train (or resume) an MGAN for the painting ``style`` in ``out_dir``; a summary dict.

    The model starts from the distilled AdaIN pair ``lite`` (default: the packaged
    ``models/adain_lite.safetensors``). ``steps``/``minutes``/``resume``/``stop_at_step``/
    ``export`` work as in :func:`~restyle.nets.train_decoder.train_decoder`; other
    ``settings``: see :class:`MGANTraining`.
    """
    cfg = make(MGANTraining, **settings)
    say = echo or (lambda _msg: None)
    export_path = check_run_args(steps, minutes, precision, export)
    style_file = Path(style)
    imaging.load_image(style_file, "style image")  # a clear error for a missing/broken file
    lite_path = Path(lite) if lite else default_lite_path()
    if not lite_path.is_file():
        raise RestyleError(f"MGAN starts from a distilled AdaIN model, and there is none at "
                           f"{lite_path}; train one with `restyle train adain-lite` or pass "
                           f"--lite FILE")
    if holdout < 1:
        raise RestyleError("holdout must be at least 1 (the photos the run is judged on)")
    content_dir = Path(data_dir) if data_dir else data_root() / "train" / "content"
    with open_run(out_dir, asdict(cfg), steps, minutes, resume, say) as (out, state, total):
        run = MGANRun(cfg, out, state, total, style_file, content_dir, holdout, eval_size,
                      precision, device, lite_path)
        say(f"{'resuming' if state else 'starting'} MGAN for {style_file.name} in {out} at step "
            f"{run.step_no}{f' of {total}' if total else ''} ({run.params / 1e6:.2f} M decoder "
            f"params, {'bf16' if run.bf16 else 'fp32'}, {run.dev})")
        return training_loop(run, minutes, stop_at_step, checkpoint_minutes, eval_every,
                             log_every, export_path, say)
