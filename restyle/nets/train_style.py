"""Training a :class:`~restyle.nets.stylenet.StyleNet`: perceptual loss, resumable, time-boxed.

Each step draws a batch of random crops of the training photos and gives each
crop a style (the styles in turn, so every style gets the same share). The
network's output is compared, through the frozen embedded VGG16, with

* the photo's features at ``content_layer`` (relative MSE: Johnson et al.'s
  feature reconstruction loss), and
* the style's Gram matrices at ``style_layers`` (relative MSE of the Grams:
  Gatys et al.'s style loss), the style image resized to ``style_size``;

    loss = (1 - s) * content + 100 * s / (1 - s) * mean_l style_l + tv_weight * TV
           + tone_weight * tone + palette_weight * palette

where ``tone`` (:func:`tone_loss`) compares the light-and-dark layout of the output and
the photo: a network trained on content and style alone keeps the photo's shapes but is
free to swap its lights and darks (measured on the shipped network at 512 px: 0.08-0.18
against Gatys's 0.002-0.007), which reads as dark blotches and night skies; and
``palette`` (:func:`palette_loss`) compares the output's colour distribution with the
painting's: the Grams leave room for colours the painting does not have (a mauve sky
under Starry Night; ``restyle evaluate``'s palette distance 5.4 against Gatys's 2.7).

with ``s = strength``, the same balance as the Gatys method's ``--strength``. With a
``teacher`` (a trained network with the same styles), ``teacher_weight * distill`` is added
(:func:`distill_loss`: the output's distance to the teacher's picture of the same crop in the
same style) and the first two terms are scaled by ``perceptual_weight``; at 0 no loss network
runs in the steps, which makes a step of a narrow student several times cheaper
(``painters_fast``, width 8, is distilled from ``painters`` this way: models/painters_fast.md).

With one style this trains a per-style network (Johnson / Ulyanov); with several,
Dumoulin et al.'s conditional-instance-norm network. ``add_to`` adds new styles to
a trained network by training only their own (gamma, beta) rows, everything else
frozen (Dumoulin et al., sec. 4).

Checkpoints, log and time budget work as for decoders (:mod:`.training`): the same
command resumes the run bit for bit. Every ``eval_every`` steps, held-out photos are
stylised in every style: the mean content and style losses are logged, with what the
full VGG16 judges whatever the loss network (:class:`~.training.Judge`: ``restyle
evaluate``'s Gram and content distances), and a preview sheet (``preview.png``, rows
photos, columns styles) is written to the run folder.

The recipe (issue #20, measured on this project's loaded 2-core CPU, judged by the full
VGG16 on held-out photos at equal wall time; models/painters.md):

* the loss is the judged objective itself: Gatys's layers (content relu4_2, style
  relu1_1..relu5_1), the style's Grams at 256 px, 128 px crops;
* the loss network stays the full VGG16 (``loss_net="vgg16"``): the distilled lite
  encoder (``"lite"``) runs 2.5x more steps per minute but its Grams are a poor proxy:
  after 14 minutes from scratch it reached judged Gram 0.124 / content 2.38 against
  VGG16's 0.096 / 1.75 (and 0.089 / 1.12 against 0.090 / 0.97 fine-tuning painters);
  VGG16 cut at relu4_1 saves only about 20 % a step and drops relu5_1;
* the shipped ``painters`` weights were then trained at the output scale (256 px crops,
  Grams at 512 px), with ``tone_weight=10`` (``painters4``: Gram 0.078 against 0.112 at
  512 px, the photo's lights and darks kept), then ``palette_weight=10`` too
  (``painters5``: Gram 0.068, palette distance 2.74 against 4.59) and 30 (``painters6``,
  shipped: Gram 0.065, palette 2.03, Starry Night's skies blue; models/painters.md);
* both are on by default (10 each): a user's single painting (seated_nude, 10 minutes from
  the installed network, 6 photos at 512 px) came out with Gram 0.124 against 0.135,
  content 0.727 against 0.716, tone 0.021 against 0.043 and palette 1.10 against 1.18
  without them, and by eye the photo reads where without them it drowns in texture (runs
  from random weights were not measured);
* a new run starts from the installed ``painters`` network (``init_from="auto"``): its
  shared weights already paint photos, so a new style is learnt in its normalisation
  parameters and a fine-tune of the rest (12 minutes: judged Gram 0.101 / content 0.91
  against 0.155 / 1.13 from random weights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from .. import __version__, imaging
from ..backbone import get_vgg
from ..errors import RestyleError
from ..losses import (gram_matrix, quantile_levels, relative_mse, sliced_wasserstein_loss,
                      total_variation, weighted_quantiles)
from ..optimize import resolve_precision
from ..params import make, param
from .lite import TAPS, default_lite_path, get_lite
from .stylenet import (StyleNet, installed_models, load_stylenet, read_stylenet_metadata,
                       resolve_model)
from .training import (CHECKPOINT, Judge, RandomCrops, center_square, check_run_args,
                       data_root, image_files, load_uint8, open_run, optimizer_step,
                       resolve_device, restore_run, save_checkpoint, training_loop,
                       warmup_cosine)

LOG = "log.jsonl"
#: Settings added after runs were checkpointed, with the value that resumes such a run as
#: it was (the tone and palette losses did not exist: weight 0; nor did distillation: no
#: teacher, the perceptual losses at full weight).
LEGACY_SETTINGS = {"tone_weight": 0.0, "palette_weight": 0.0, "perceptual_weight": 1.0,
                   "teacher": "", "teacher_weight": 10.0}
#: The loss networks ``StyleTraining.loss_net`` names.
LOSS_NETS = ("vgg16", "lite")
#: Style weight that ``strength=0.5`` stands for (as in the Gatys method).
STYLE_BALANCE = 100.0


@dataclass
class StyleTraining:
    """The settings that define a style network training run (a resumed run keeps them)."""

    width: int = param(16, "channels of the first layer (2x and 4x deeper in)", min=4, max=256)
    blocks: int = param(5, "residual blocks", min=0, max=32)
    batch: int = param(4, "crops per step", min=1, max=512)
    crop: int = param(128, "crop size in pixels", min=32, max=2048)
    style_size: int = param(256, "long side of the style images when their Grams are taken "
                            "(the strokes' size at inference; 512 for bolder strokes at 512 px)",
                            min=32, max=4096)
    lr: float = param(1e-3, "peak Adam learning rate", min=1e-7, max=1.0)
    warmup: int = param(100, "linear learning-rate warmup steps", min=0)
    strength: float = param(0.1, "style strength (as Gatys --strength; a network keeps less "
                            "of the photo than Gatys at the same strength)", min=0.01, max=0.99)
    content_layer: str = param("relu4_2", "loss-network layer of the content loss (Gatys's "
                               "and restyle evaluate's)")
    style_layers: str = param("relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
                              "loss-network layers of the style loss (Gatys's and restyle "
                              "evaluate's)")
    tv_weight: float = param(0.0, "total-variation weight (squared differences, [0, 1] units)",
                             min=0.0)
    tone_weight: float = param(10.0, "weight of the tone loss: keep the photo's lights and "
                               "darks where they are (luminance averaged over 8 px blocks, "
                               "mean removed, squared differences)", min=0.0)
    palette_weight: float = param(10.0, "weight of the palette loss: the output's pixel colours "
                                  "distributed like the painting's (sliced Wasserstein in "
                                  "RGB, relative), against colour casts", min=0.0)
    perceptual_weight: float = param(1.0, "weight of the content and style losses through the "
                                     "loss network (0: none, and the loss network only judges: "
                                     "a distillation from --teacher alone)", min=0.0)
    teacher: str = param("", "a trained style network (installed name or file) whose pictures "
                         "the network learns to copy (distillation: a smaller, faster network "
                         "from a larger one); its styles must include the trained ones")
    teacher_weight: float = param(10.0, "weight of the distillation loss (with --teacher): "
                                  "mean absolute difference from the teacher's picture, of "
                                  "the pixels and of their horizontal and vertical steps",
                                  min=0.0)
    loss_net: str = param("vgg16", "loss network: the embedded VGG16 (it stops at the deepest "
                          "layer asked for), or 'lite', the distilled adain-lite encoder "
                          "(relu1_1..relu4_1, about 7x cheaper; the full VGG16 still judges)",
                          choices=LOSS_NETS)
    seed: int = param(0, "random seed: initial weights, crops", min=0)


#: Block size (px) over which :func:`tone_loss` averages the luminance.
TONE_BLOCK = 8


def tone_loss(y: torch.Tensor, x: torch.Tensor, block: int = TONE_BLOCK) -> torch.Tensor:
    """Mean squared difference of the output's and the photo's luminance averaged over
    ``block`` px blocks, each image's mean removed: their light-and-dark layouts, free of
    fine texture and of the style's overall brightness ([0, 1] units; 0 for the photo)."""
    def layout(t: torch.Tensor) -> torch.Tensor:
        lum = torch.nn.functional.avg_pool2d(imaging.luminance(t.float()), block)
        return lum - lum.mean(dim=(-2, -1), keepdim=True)
    return (layout(y) - layout(x)).pow(2).mean()


#: Directions in RGB on which :func:`palette_loss` compares colour distributions, and the
#: number of quantiles kept of each painting's.
PALETTE_DIRECTIONS, PALETTE_LEVELS = 32, 256


def palette_directions(k: int = PALETTE_DIRECTIONS) -> torch.Tensor:
    """``k`` fixed unit directions of RGB space (3, k): the grey axis, the two opponent
    axes (red-green, yellow-blue), then random ones (seed 0)."""
    fixed = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 0.0], [1.0, 1.0, -2.0]])
    rest = torch.randn(max(k - 3, 0), 3, generator=torch.Generator().manual_seed(0))
    d = torch.cat([fixed, rest])[:k]
    return (d / d.norm(dim=1, keepdim=True)).t().contiguous()


def palette_target(image: torch.Tensor, directions: torch.Tensor,
                   levels: int = PALETTE_LEVELS) -> torch.Tensor:
    """A painting's (1, 3, H, W) colour distribution as :func:`palette_loss` compares it:
    the quantiles of its pixels' projections on ``directions`` (K, levels)."""
    pixels = image.float().reshape(3, -1)
    return weighted_quantiles(directions.float().t() @ pixels, None, quantile_levels(levels))


def palette_loss(y: torch.Tensor, directions: torch.Tensor, targets: torch.Tensor
                 ) -> torch.Tensor:
    """Sliced Wasserstein distance between each output's pixel colours (averaged over 2 px
    blocks) and its painting's (``targets``: (N, K, Q) from :func:`palette_target`),
    relative to the painting's mean squared projection; the mean over the batch. Zero when
    the output uses the painting's colours in the painting's proportions, wherever they
    are; a colour the painting lacks (a pink sky for Starry Night) costs."""
    y = torch.nn.functional.avg_pool2d(y.float(), 2) if min(y.shape[-2:]) >= 4 else y.float()
    return sum(sliced_wasserstein_loss(y[i:i + 1], directions, targets[i])
               for i in range(len(y))) / len(y)


def distill_loss(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """How far pictures ``y`` are from the teacher's ``t`` ([0, 1] units): the mean absolute
    difference of the pixels plus that of their horizontal and vertical steps, so that the
    student copies the teacher's strokes and edges, not only their local average."""
    y, t = y.float(), t.float()
    steps = sum((y.diff(dim=d) - t.diff(dim=d)).abs().mean() for d in (-1, -2))
    return (y - t).abs().mean() + steps


def teacher_styles(teacher: StyleNet, names: Sequence[str], path: Path) -> torch.Tensor:
    """The index in ``teacher`` of each style in ``names`` (a clear error for one it lacks)."""
    missing = [n for n in names if n not in teacher.styles]
    if missing:
        raise RestyleError(f"the teacher {path} has no style {', '.join(missing)}; its styles: "
                           f"{', '.join(teacher.styles)}")
    return torch.tensor([teacher.styles.index(n) for n in names])


def _split(layers: str) -> list[str]:
    names = [x.strip() for x in layers.split(",") if x.strip()]
    if not names:
        raise RestyleError("no style layers given")
    return names


class StyleRun:
    """One style network training run in a folder (see :func:`train_style`)."""

    def __init__(self, cfg: StyleTraining, out: Path, state: dict | None, total: int | None,
                 style_files: list[Path], names: list[str], content_dir: Path, holdout: int,
                 eval_size: int, precision: str, device: str, add_to: Path | None,
                 init_from: Path | None = None):
        self.cfg, self.out, self.total = cfg, out, total
        self.dev = resolve_device(device)
        self.bf16 = resolve_precision(precision, self.dev)
        self.style_layers = _split(cfg.style_layers)
        self.layers = sorted(set(self.style_layers) | {cfg.content_layer})
        self.vgg = loss_network(cfg.loss_net).to(self.dev)
        self.vgg.check_layers(self.layers)

        files = image_files(content_dir, "training photo")
        if len(files) <= holdout:
            raise RestyleError(f"need more than {holdout} training photos, found {len(files)}")
        held = sorted({round(i * len(files) / holdout) for i in range(holdout)})
        photos = [load_uint8(p, "training photo") for p in files]
        self.train_set = RandomCrops([im for i, im in enumerate(photos) if i not in held], cfg.crop)
        self.eval_batch = torch.stack([center_square(photos[i], eval_size) for i in held])
        self.data_note = f"{len(photos) - len(held)} photos from {content_dir.name}/"

        # the network: fresh, resumed, or an existing one grown by new styles
        base: StyleNet | None = load_stylenet(add_to) if add_to is not None else None
        if base is not None and set(base.styles) & set(names):
            raise RestyleError(f"{add_to} already has the styles "
                               f"{sorted(set(base.styles) & set(names))}")
        all_names = (base.styles if base else []) + names
        self.first_trained = len(base.styles) if base else 0
        self.net = StyleNet(all_names, cfg.width, cfg.blocks)
        if base is not None:
            self._grow_from(base, len(base.styles))
        elif state is None and init_from is not None:
            start = load_stylenet(init_from)
            if start.styles == all_names:
                self.net.load_state_dict(start.state_dict())
            else:  # other styles: its shared weights, every style at its styles' mean
                self._grow_from(start, 0)
        elif state is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                self.net = StyleNet(all_names, cfg.width, cfg.blocks)
        if state is not None:
            if state["styles"] != all_names:
                raise RestyleError(f"{out} trains the styles {state['styles']}, not {all_names}")
            self.net.load_state_dict(state["model"])
        self.net.to(self.dev, memory_format=torch.channels_last).train()
        self.teacher, self.teacher_index = None, None
        if cfg.teacher:
            path = resolve_model(cfg.teacher)
            self.teacher = load_stylenet(path).to(self.dev, memory_format=torch.channels_last)
            self.teacher.eval().requires_grad_(False)
            self.teacher_index = teacher_styles(self.teacher, all_names, path).to(self.dev)
        if cfg.perceptual_weight == 0 and not (cfg.teacher and cfg.teacher_weight):
            raise RestyleError("--perceptual-weight 0 leaves nothing to learn from without "
                               "--teacher (and a --teacher-weight above 0)")
        params = self._trainable()
        self.opt = torch.optim.Adam(params, lr=cfg.lr)

        # style targets: Gram matrices of each style at style_size
        # and their colour distributions (palette_loss)
        self.style_files = style_files
        self.grams: dict[str, torch.Tensor] = {}
        self.palette_dirs = palette_directions().to(self.dev)
        with torch.no_grad():
            per_style, palettes = [], []
            for f in style_files:
                img = imaging.load_image(f, "style image")
                img = imaging.to_tensor(
                    imaging.resize(img, imaging.fit_size(*img.size, cfg.style_size))).to(self.dev)
                feats = self.encode(img, self.style_layers)
                per_style.append({n: gram_matrix(feats[n]).float()[0] for n in self.style_layers})
                palettes.append(palette_target(img, self.palette_dirs))
            for n in self.style_layers:
                self.grams[n] = torch.stack([g[n] for g in per_style])  # (n_new, C, C)
            self.palettes = torch.stack(palettes)  # (n_new, K, Q)
        self.judge = Judge(style_files, self.eval_batch, eval_size, self.dev)

        restore_run(self, state, cfg.seed, out / LOG, lambda: {
            "config": asdict(cfg), "total_steps": total, "styles": all_names,
            "trained_styles": names, "style_files": [str(f) for f in style_files],
            "add_to": str(add_to) if add_to else None,
            "init_from": str(init_from) if init_from else None,
            "params": sum(p.numel() for p in self.net.parameters()),
            "held_out": [files[i].name for i in held], "bf16": self.bf16,
            "device": str(self.dev), "restyle": __version__})

    def _grow_from(self, base: StyleNet, keep: int) -> None:
        """Copy ``base``'s shared weights and its first ``keep`` styles' normalisation rows
        into this network; the other styles start at the mean of ``base``'s styles."""
        state = self.net.state_dict()
        for k, v in base.state_dict().items():
            if k.endswith((".gamma", ".beta")):
                state[k][:keep] = v[:keep]
                state[k][keep:] = v.mean(0, keepdim=True)
            else:
                state[k] = v
        self.net.load_state_dict(state)

    def _trainable(self) -> list[torch.nn.Parameter]:
        """All parameters, or (growing a network) only the new styles' gamma/beta rows."""
        if self.first_trained == 0:
            return list(self.net.parameters())
        first = self.first_trained
        params = []
        for name, p in self.net.named_parameters():
            if name.endswith((".gamma", ".beta")):
                p.register_hook(lambda g, first=first: torch.cat([torch.zeros_like(g[:first]),
                                                                  g[first:]]))
                params.append(p)
            else:
                p.requires_grad_(False)
        return params

    @property
    def trained_styles(self) -> list[str]:
        return self.net.styles[self.first_trained:]

    @property
    def weights_file(self) -> Path:
        return self.out / "stylenet.safetensors"

    @staticmethod
    def describe_step(r: dict) -> str:
        return (f"loss {r['loss']:.4f} ("
                + (f"content {r['content']:.3f}, style {r['style']:.4f}" if "content" in r
                   else "")
                + (f"{', ' if 'content' in r else ''}teacher {r['teacher']:.4f}"
                   if "teacher" in r else "")
                + (f", tv {r['tv']:.5f}" if "tv" in r else "")
                + (f", tone {r['tone']:.4f}" if "tone" in r else "")
                + (f", palette {r['palette']:.4f}" if "palette" in r else "") + ")")

    @staticmethod
    def describe_eval(e: dict) -> str:
        return (f"step {e['step']}: held-out "
                + (f"distance to the teacher {e['teacher']:.4f}, " if "teacher" in e else "")
                + f"content {e['content']:.3f}, style {e['style']:.4f} "
                f"(per style: {', '.join(f'{v:.3f}' for v in e['style_each'])}); VGG16 judge: "
                f"content {e['judge_content']:.3f}, Gram {e['judge_gram']:.4f} (per style: "
                f"{', '.join(f'{v:.3f}' for v in e['judge_gram_each'])})")

    def encode(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.vgg(images, list(layers))

    def weights(self) -> tuple[float, float]:
        s = self.cfg.strength
        return 1.0 - s, STYLE_BALANCE * s / (1.0 - s)

    def losses(self, y: torch.Tensor, x: torch.Tensor, which: torch.Tensor) -> dict:
        """Content and style losses of outputs ``y`` for photos ``x`` in styles ``which``
        (indices among the trained styles)."""
        with torch.no_grad():
            target = self.encode(x, [self.cfg.content_layer])[self.cfg.content_layer]
        feats = self.encode(y, self.layers)
        content = relative_mse(feats[self.cfg.content_layer], target)
        style = sum(relative_mse(gram_matrix(feats[n]), self.grams[n][which])
                    for n in self.style_layers) / len(self.style_layers)
        return {"content": content, "style": style}

    def step(self) -> dict[str, float]:
        cfg = self.cfg
        for group in self.opt.param_groups:
            group["lr"] = warmup_cosine(self.step_no, self.total, cfg.lr, cfg.warmup)
        x = self.train_set.sample(cfg.batch, self.gen).to(self.dev)
        n_new = len(self.trained_styles)
        which = (torch.arange(cfg.batch) + self.step_no * cfg.batch) % n_new  # styles in turn
        mix = torch.nn.functional.one_hot(which + self.first_trained, self.net.n_styles).float()
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            y = self.net(x, mix.to(self.dev))
        parts, loss = {}, 0.0
        if cfg.perceptual_weight:
            parts = self.losses(y, x, which.to(self.dev))
            cw, sw = self.weights()
            loss = cfg.perceptual_weight * (cw * parts["content"] + sw * parts["style"])
        if self.teacher is not None:
            parts["teacher"] = distill_loss(y, self.teach(x, which + self.first_trained))
            loss = loss + cfg.teacher_weight * parts["teacher"]
        if cfg.tv_weight:
            parts["tv"] = total_variation(y)
            loss = loss + cfg.tv_weight * parts["tv"]
        if cfg.tone_weight:
            parts["tone"] = tone_loss(y, x)
            loss = loss + cfg.tone_weight * parts["tone"]
        if cfg.palette_weight:
            parts["palette"] = palette_loss(y, self.palette_dirs, self.palettes[which])
            loss = loss + cfg.palette_weight * parts["palette"]
        return optimizer_step(self, loss, parts)

    @torch.no_grad()
    def teach(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """The teacher's pictures of photos ``x``, each in its style ``styles`` (indices
        among this network's styles)."""
        mix = torch.nn.functional.one_hot(self.teacher_index[styles.to(self.dev)],
                                          self.teacher.n_styles).float()
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.teacher(x, mix).float()

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Held-out photos in every trained style: mean losses, and the preview sheet."""
        self.net.eval()
        x = self.eval_batch.to(self.dev)
        rows, content, style_each, judged, copied = [], [], [], [], []
        for k, name in enumerate(self.trained_styles):
            with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16):
                y = self.net(x, self.net.mix_vector(name, len(x)).to(self.dev)).float()
            which = torch.full((len(x),), k, device=self.dev)
            if self.teacher is not None:
                copied.append(float(distill_loss(y, self.teach(x, which + self.first_trained))))
            parts = self.losses(y, x, which)
            content.append(float(parts["content"]))
            style_each.append(round(float(parts["style"]), 5))
            judged.append(self.judge(y, k))
            rows.append(y.cpu())
        self.net.train()
        sheet = torch.cat([torch.cat([self.eval_batch[i] for i in range(len(x))], 1)]
                          + [torch.cat([r[i] for i in range(len(x))], 1) for r in rows], 2)
        imaging.save_image(sheet.unsqueeze(0), self.out / "preview.png", overwrite=True)
        n = len(judged)
        extra = {"teacher": round(sum(copied) / n, 5)} if copied else {}
        return {**extra, "content": round(sum(content) / len(content), 5),
                "style": round(sum(style_each) / len(style_each), 5), "style_each": style_each,
                "judge_content": round(sum(c for c, _ in judged) / n, 5),
                "judge_gram": round(sum(g for _, g in judged) / n, 5),
                "judge_gram_each": [round(g, 5) for _, g in judged]}

    def save_weights(self, path: Path) -> Path:
        return self.net.save(path, steps=self.step_no, total_steps=self.total,
                             train_seconds=round(self.train_seconds), config=asdict(self.cfg),
                             style_files=[f.name for f in self.style_files],
                             trained_styles=self.trained_styles, last_eval=self.last_eval,
                             train_data=self.data_note, loss_network=self.vgg.source,
                             restyle=__version__)

    def checkpoint(self) -> None:
        save_checkpoint(self, styles=self.net.styles, model=self.net.state_dict())


class LiteLossNet:
    """The distilled adain-lite encoder called like the VGG16 backbone (a cheap loss network)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else default_lite_path()
        self.encoder = get_lite(self.path).encoder
        self.names = TAPS
        self.source = f"adain-lite encoder ({self.path.name})"

    def check_layers(self, layers: Sequence[str]) -> None:
        bad = [n for n in layers if n not in self.names]
        if bad:
            raise RestyleError(f"the lite loss network has no layer {', '.join(bad)}; it has "
                               f"{', '.join(self.names)} (e.g. --content-layer relu4_1 "
                               f"--style-layers relu1_1,relu2_1,relu3_1,relu4_1)")

    def to(self, device) -> "LiteLossNet":
        self.encoder.to(device)
        return self

    def __call__(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.encoder.taps(images, layers)


def loss_network(name: str):
    """The frozen loss network ``name`` of :data:`LOSS_NETS`."""
    if name == "vgg16":
        return get_vgg()
    if name == "lite":
        return LiteLossNet()
    raise RestyleError(f"unknown loss network {name!r}; one of {', '.join(LOSS_NETS)}")


def style_name(path: Path) -> str:
    """A style's name: its file name without the extension."""
    return path.stem


#: The installed network ``init_from="auto"`` starts new runs from.
AUTO_INIT = "painters"


def _auto_init(init_from, out_dir, resume: bool, add_to, settings: dict, echo):
    """``init_from`` with ``"auto"`` resolved: the installed painters network when a new run
    (no checkpoint to resume, no ``add_to``) has its shape, else None; names resolved."""
    if init_from in (None, "", "none"):
        return None
    if init_from != "auto":
        return resolve_model(str(init_from))
    if add_to or (resume and (Path(out_dir) / CHECKPOINT).exists()):
        return None
    path = installed_models().get(AUTO_INIT)
    if path is None:
        return None
    meta = read_stylenet_metadata(path)
    defaults = make(StyleTraining)
    shape = (settings.get("width", defaults.width), settings.get("blocks", defaults.blocks))
    if shape != (int(meta["width"]), int(meta["blocks"])):
        return None
    if echo:
        echo(f"starting from the installed {AUTO_INIT} network ({path}); --init-from none "
             f"starts from random weights")
    return path


def train_style(styles: Sequence[str | Path], out_dir: str | Path, minutes: float | None = None,
                steps: int | None = None, resume: bool = True, *,
                names: Sequence[str] | None = None, add_to: str | Path | None = None,
                init_from: str | Path | None = "auto",
                data_dir: str | Path | None = None, export: str | Path | None = None,
                checkpoint_minutes: float = 5.0, eval_every: int = 250, eval_size: int = 256,
                holdout: int = 3, log_every: int = 10, precision: str = "auto",
                device: str = "auto", stop_at_step: int | None = None,
                echo: Callable[[str], None] | None = print, **settings) -> dict:
    """Train (or resume) a style network for the style images ``styles``; a summary dict.

    One style gives a per-style network, several a conditional-instance-norm network
    (the style names are the file names, or ``names``). ``add_to`` (a trained network
    file) adds the styles to it, training only their normalisation parameters.
    ``init_from`` (a trained network: a file or an installed name) starts a *new* run from
    its weights (the optimizer starts fresh): with the same styles, e.g. to fine-tune it at
    another ``strength``; with other styles, its shared weights and every new style at the
    mean of its styles' normalisation parameters, a network that already paints photos
    (transfer learning). ``"auto"`` (the default) is the installed ``painters`` network
    for a new run of its width and depth, else random weights; ``None`` random weights.
    ``steps``, ``minutes``, ``resume``, ``export``, ``stop_at_step`` work as in
    :func:`~restyle.nets.train_decoder.train_decoder`; other ``settings``: see
    :class:`StyleTraining`.
    """
    if add_to and init_from not in (None, "", "none", "auto"):
        raise RestyleError("--add-to and --init-from do not go together: one grows a network "
                           "by new styles, the other starts from a network's weights")
    init_from = _auto_init(init_from, out_dir, resume, add_to, settings, echo)
    if add_to or init_from:  # a grown or continued network keeps its shape
        meta = read_stylenet_metadata(add_to or init_from)
        settings.update(width=int(meta["width"]), blocks=int(meta["blocks"]))
    cfg = make(StyleTraining, **settings)
    say = echo or (lambda _msg: None)
    export_path = check_run_args(steps, minutes, precision, export)
    if not styles:
        raise RestyleError("give at least one style image")
    style_files = [Path(s) for s in styles]
    for f in style_files:
        imaging.load_image(f, "style image")  # a clear error for a missing or broken file
    names = list(names) if names else [style_name(f) for f in style_files]
    if len(names) != len(style_files):
        raise RestyleError(f"{len(names)} names for {len(style_files)} styles")
    if len(set(names)) != len(names):
        raise RestyleError(f"style names must be unique, got {names}")
    add_path = Path(add_to) if add_to else None
    content_dir = Path(data_dir) if data_dir else data_root() / "train" / "content"
    with open_run(out_dir, asdict(cfg), steps, minutes, resume, say, init_from,
                  LEGACY_SETTINGS) as (out, state, total):
        run = StyleRun(cfg, out, state, total, style_files, names, content_dir, holdout,
                       eval_size, precision, device, add_path,
                       Path(init_from) if init_from else None)
        say(f"{'resuming' if state else 'starting'} style network ({', '.join(names)}) in {out} "
            f"at step {run.step_no}{f' of {total}' if total else ''} "
            f"({sum(p.numel() for p in run.net.parameters()) / 1e6:.2f} M params, "
            f"{'bf16' if run.bf16 else 'fp32'}, {run.dev})")
        return training_loop(run, minutes, stop_at_step, checkpoint_minutes, eval_every,
                             log_every, export_path, say)
