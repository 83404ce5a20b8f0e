"""What every network trainer shares: training photos as random crops, the
learning-rate schedule, atomic checkpoints, a JSONL log and PSNR.

Nothing here holds global state: randomness comes from a ``torch.Generator``
whose state goes into the checkpoint, so a resumed run draws the same crops it
would have drawn without the interruption.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .. import fsio, imaging
from ..backbone import get_vgg
from ..errors import RestyleError
from ..evaluate.metrics import CONTENT_LAYERS, STYLE_LAYERS
from ..losses import gram_matrix, relative_mse

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
#: Environment variable naming the data folder (with train/content/ and styles/ inside).
DATA_ENV = "RESTYLE_DATA"
#: Steps timed before planning a run's length when only a time budget is given.
PROBE_STEPS = 20


def data_root() -> Path:
    """The shared data folder: ``$RESTYLE_DATA``, else ``../shared/data`` next to the project."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    import restyle
    return Path(restyle.__file__).resolve().parents[1].parent / "shared" / "data"


def image_files(folder: str | Path, what: str) -> list[Path]:
    """The image files in ``folder``, sorted by name; RestyleError if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RestyleError(f"{what} folder not found: {folder} (set ${DATA_ENV} to the data "
                           f"folder or pass the folder explicitly)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise RestyleError(f"no images in the {what} folder {folder}")
    return files


def load_uint8(path: str | Path, what: str, max_short_side: int | None = None) -> torch.Tensor:
    """An image file as a (3, H, W) uint8 tensor, optionally downscaled (short side)."""
    img = imaging.load_image(path, what)
    if max_short_side and min(img.size) > max_short_side:
        w, h = img.size
        s = max_short_side / min(w, h)
        img = imaging.resize(img, (max(1, round(w * s)), max(1, round(h * s))))
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def center_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """The central square of a (3, H, W) uint8 image, resized to ``size``: (3, size, size) float."""
    _, h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[:, top:top + side, left:left + side].float().div(255).unsqueeze(0)
    return imaging.resize_tensor(square, (size, size))[0]


class RandomCrops:
    """Square crops of random size and position, resized to ``crop``, randomly mirrored.

    The crop's side in the source image is log-uniform between ``crop`` (native
    pixels) and the image's short side (the whole height), so the network sees
    both fine detail and whole scenes downscaled; photos are never enlarged
    unless they are smaller than ``crop``.
    """

    def __init__(self, images: Sequence[torch.Tensor], crop: int):
        if not images:
            raise RestyleError("no training images")
        self.images = list(images)
        self.crop = crop

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """A batch (n, 3, crop, crop) of float RGB in [0, 1]."""
        out = torch.empty(n, 3, self.crop, self.crop)
        idx = torch.randint(len(self.images), (n,), generator=generator)
        u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
        for k in range(n):
            img = self.images[int(idx[k])]
            _, h, w = img.shape
            short = min(h, w)
            lo = min(self.crop, short)
            side = round(lo * (short / lo) ** float(u[k, 0]))  # log-uniform in [lo, short]
            side = max(1, min(side, short))
            top = int(float(u[k, 1]) * (h - side + 1))
            left = int(float(u[k, 2]) * (w - side + 1))
            patch = img[:, top:top + side, left:left + side].float().div(255).unsqueeze(0)
            patch = imaging.resize_tensor(patch, (self.crop, self.crop))[0]
            out[k] = patch.flip(-1) if float(u[k, 3]) < 0.5 else patch
        return out


@dataclass
class Photos:
    """A trainer's photos: random crops of most, a fixed evaluation batch of the rest."""

    train_set: RandomCrops
    train_photos: list[torch.Tensor]  # (3, H, W) uint8 each
    eval_batch: torch.Tensor  # (holdout, 3, eval_size, eval_size) centre squares
    held_out: list[str]  # their file names
    note: str  # "N photos from FOLDER/"


def training_photos(content_dir: Path, holdout: int, crop: int, eval_size: int,
                    device: torch.device | str = "cpu") -> Photos:
    """The photos of ``content_dir``: ``holdout`` of them, spread over the sorted list, kept
    out of training for evaluation; the rest sampled as random crops of ``crop`` px."""
    files = image_files(content_dir, "training photo")
    if len(files) <= holdout:
        raise RestyleError(f"need more than {holdout} training photos, found {len(files)} "
                           f"in {content_dir}")
    held = sorted({round(i * len(files) / holdout) for i in range(holdout)})
    photos = [load_uint8(p, "training photo") for p in files]
    train_photos = [im for i, im in enumerate(photos) if i not in held]
    eval_batch = torch.stack([center_square(photos[i], eval_size) for i in held]).to(device)
    return Photos(RandomCrops(train_photos, crop), train_photos, eval_batch,
                  [files[i].name for i in held],
                  f"{len(train_photos)} photos from {Path(content_dir).name}/")


class Judge:
    """What the run is judged by whatever it trains with: ``restyle evaluate``'s metrics on the
    held-out photos with the full VGG16 in float32: Gram distance over relu1_1..relu5_1 to the
    style image at the evaluation size, and content distance at relu4_2 to the photo."""

    def __init__(self, style_files: Sequence[Path], photos: torch.Tensor, size: int,
                 device: torch.device):
        self.vgg = get_vgg().to(device)
        self.style_layers, self.content_layers = list(STYLE_LAYERS), list(CONTENT_LAYERS)
        self.grams = []
        with torch.no_grad():
            for f in style_files:
                img = imaging.load_image(f, "style image")
                img = imaging.resize(img, imaging.fit_size(*img.size, size))
                feats = self.vgg(imaging.to_tensor(img).to(device), self.style_layers)
                self.grams.append({n: gram_matrix(v.float()) for n, v in feats.items()})
            self.content = self.vgg(photos.to(device), self.content_layers)

    @torch.no_grad()
    def __call__(self, outputs: torch.Tensor, style: int) -> tuple[float, float]:
        """Mean content and Gram distances of ``outputs`` (the held-out photos in style
        ``style``, an index into the style files)."""
        feats = self.vgg(outputs.float(), self.style_layers + self.content_layers)
        content, gram = [], []
        for i in range(len(outputs)):
            content.append(sum(float(relative_mse(feats[n][i:i + 1], self.content[n][i:i + 1]))
                               for n in self.content_layers) / len(self.content_layers))
            gram.append(sum(float(relative_mse(gram_matrix(feats[n][i:i + 1]),
                                               self.grams[style][n]))
                            for n in self.style_layers) / len(self.style_layers))
        return sum(content) / len(content), sum(gram) / len(gram)


def warmup_cosine(step: int, total: int | None, peak: float, warmup: int,
                  final_fraction: float = 0.01) -> float:
    """Learning rate at ``step`` (0-based): linear warmup, then cosine decay to
    ``final_fraction * peak`` at ``total``. With ``total`` unknown (yet), only the warmup
    applies. The warmup is capped at a tenth of the run.
    """
    if total is not None:
        warmup = min(warmup, total // 10)
    if step < warmup:
        return peak * (step + 1) / warmup
    if total is None:
        return peak
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * t)))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    with fsio.atomic_write(path) as f:
        torch.save(obj, f)


def save_checkpoint(run, **state: Any) -> None:
    """Write a run's checkpoint atomically, then its weights file: what every trainer keeps
    (step, planned length, settings, optimizer, random generator, time, log length, last
    evaluation) plus ``state``, the trainer's own (its model or models, extras)."""
    from .. import __version__
    atomic_torch_save({"step": run.step_no, "total_steps": run.total,
                       "config": asdict(run.cfg), "optimizer": run.opt.state_dict(),
                       "rng": run.gen.get_state(), "train_seconds": run.train_seconds,
                       "log_bytes": run.log.size(), "last_eval": run.last_eval,
                       "restyle": __version__, **state}, run.out / CHECKPOINT)
    run.save_weights(run.weights_file)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`atomic_torch_save` (tensors and plain data only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RestyleError(f"cannot read the checkpoint {path} ({e}); delete it or pass "
                           f"--no-resume to start over") from None
    if not isinstance(state, dict) or "step" not in state:
        raise RestyleError(f"{path} is not a restyle training checkpoint")
    return state


class JsonlLog:
    """Append-only JSON-lines log. ``truncate_to`` drops lines written after a checkpoint."""

    def __init__(self, path: Path, truncate_to: int | None = None):
        self.path = path
        if truncate_to is None:
            path.write_text("")
        elif path.exists() and path.stat().st_size > truncate_to:
            with open(path, "r+b") as f:
                f.truncate(truncate_to)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0


def read_log(path: str | Path) -> list[dict]:
    """The records of a JSONL log."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image of a batch in [0, 1]: 10 log10(1 / MSE)."""
    mse = (output.float().clamp(0, 1) - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def resolve_device(device: str) -> torch.device:
    """``auto`` (a CUDA GPU if there is one, else the CPU), ``cpu`` or ``cuda``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RestyleError("--device cuda was asked for, but no CUDA GPU is available")
    if device not in ("cpu", "cuda"):
        raise RestyleError(f"device must be auto, cpu or cuda, not {device!r}")
    return torch.device(device)


@contextlib.contextmanager
def run_lock(out: Path):
    """An exclusive lock on ``out``: two trainings writing one run folder would corrupt it.

    Released when the training returns or fails, and by the OS when its process dies.
    """
    with open(out / ".lock", "w") as f:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; run one training per folder
            yield
            return
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RestyleError(f"another training is running in {out}; wait for it, stop it, "
                               f"or use another --out") from None
        yield


def check_run_args(steps, minutes, precision: str, export) -> Path | None:
    """Validate the arguments every trainer shares; returns the export path (or None)."""
    if steps is not None and (int(steps) != steps or steps < 1):
        raise RestyleError(f"--steps must be a positive whole number, not {steps}")
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        raise RestyleError(f"--minutes must be a positive number, not {minutes}")
    if precision not in ("auto", "bf16", "fp32"):
        raise RestyleError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if export is None:
        return None
    export = Path(export)
    if export.suffix != ".safetensors":
        raise RestyleError(f"--export must name a .safetensors file, not {export}")
    if not export.parent.is_dir():
        raise RestyleError(f"cannot export to {export}: folder {export.parent} does not exist")
    return export


def make_run_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RestyleError(f"cannot create the run folder {out}: {e.strerror or e}") from None
    return out


CHECKPOINT = "checkpoint.pt"


@contextlib.contextmanager
def open_run(out_dir: str | Path, cfg: dict, steps, minutes, resume: bool, say,
             init_from=None, legacy: dict | None = None):
    """A trainer's run folder, created and locked, with its checkpoint state (None for a new
    run) and planned length (:func:`plan_total`): ``with open_run(...) as (out, state, total)``.
    ``init_from`` (weights a *new* run starts from) is refused where a run already is.
    ``legacy``: settings added after runs were checkpointed, with the value that reproduces
    a run saved without them (a loss that did not exist: weight 0)."""
    out = make_run_dir(out_dir)
    with run_lock(out):
        fsio.clean_stale_temps(out, any_process=True)  # a killed checkpoint write's (locked)
        path = out / CHECKPOINT
        state = load_checkpoint(path) if resume and path.exists() else None
        if state is not None and legacy:
            state["config"] = {**legacy, **state["config"]}
        total = plan_total(state, cfg, out, steps, minutes, say)
        if state is not None and init_from is not None:
            raise RestyleError(f"{out} already holds a run; --init-from starts a new one "
                               f"(add --no-resume or pick another --out)")
        yield out, state, total


def plan_total(state: dict | None, cfg: dict, out: Path, steps, minutes, say) -> int | None:
    """The run's planned length: checks a checkpoint's settings against ``cfg`` and
    ``steps`` against its progress. None means "plan it from the speed of the first steps"."""
    total = int(steps) if steps is not None else None
    if state is not None:
        diff = [f"{k}={state['config'].get(k)!r} (asked: {v!r})"
                for k, v in cfg.items() if state["config"].get(k) != v]
        if diff:
            raise RestyleError(f"{out} holds a run with other settings: {', '.join(diff)}; "
                               f"repeat its settings to resume, or pass --no-resume or "
                               f"another --out to start a new run")
        if total is not None and total < state["step"]:
            raise RestyleError(f"the run in {out} is already at step {state['step']}; "
                               f"--steps {total} would end it in the past")
        if total is not None and total != state["total_steps"]:
            say(f"changing the planned length from {state['total_steps']} to {total} steps")
        total = total if total is not None else state["total_steps"]
    if total is None and minutes is None:
        raise RestyleError("give --steps (the run's planned length) or --minutes (a time "
                           "budget to plan it from)")
    return total


def restore_run(run, state: dict | None, seed: int, log_path: Path, start_record) -> None:
    """Set a run's random generator, counters and log: fresh (seeded, with the log started
    by ``start_record()``'s dict) or from a checkpoint ``state`` (the log cut back to it)."""
    run.gen = torch.Generator().manual_seed(seed)
    run.step_no, run.train_seconds, run.last_eval = 0, 0.0, None
    if state is not None:
        run.opt.load_state_dict(state["optimizer"])
        run.gen.set_state(state["rng"])
        run.step_no = state["step"]
        run.train_seconds = state["train_seconds"]
        run.last_eval = state["last_eval"]
    run.log = JsonlLog(log_path, truncate_to=state["log_bytes"] if state else None)
    if state is None:
        run.log.write({"start": True, **start_record()})


def optimizer_step(run, loss: torch.Tensor, parts: dict[str, torch.Tensor]) -> dict[str, float]:
    """One optimizer step of a run (``run.opt``, ``run.step_no``, ``run.out``) on ``loss``:
    a non-finite loss stops the run (its last checkpoint stays); returns the parts as floats
    with the total under ``loss``."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the training loss became {float(loss)} at step "
                                 f"{run.step_no + 1}; lower --lr (the last checkpoint in "
                                 f"{run.out} is kept)")
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    run.step_no += 1
    parts["loss"] = loss
    return {k: float(v.detach()) for k, v in parts.items()}


def training_loop(run, minutes, stop_at_step, checkpoint_minutes, eval_every, log_every,
                  export_path, say) -> dict:
    """Steps until the run's end, the time budget or ``stop_at_step``; log, evaluate, checkpoint.

    ``run`` provides ``step_no``, ``total``, ``train_seconds``, ``last_eval``, ``out``,
    ``log`` (a :class:`JsonlLog`), ``opt``, ``weights_file`` (its default weights path),
    ``step() -> dict`` of loss parts (with ``loss``), ``evaluate() -> dict`` of held-out
    measurements (the loop stores them with the step as ``last_eval`` and in the log),
    ``describe_eval(dict) -> str``, ``describe_step(dict) -> str``, ``checkpoint()`` and
    ``save_weights(path)``.
    """

    def evaluate() -> None:  # the run measures; the loop keeps the record
        run.last_eval = {"step": run.step_no, **run.evaluate()}
        run.log.write({"step": run.step_no, "eval": run.last_eval})
        say(run.describe_eval(run.last_eval))

    start = last_ckpt = time.perf_counter()
    window: dict[str, float] = {}
    window_s, window_n, times = 0.0, 0, []
    reason = "finished"
    if run.step_no == 0:
        evaluate()
    try:
        while run.total is None or run.step_no < run.total:
            if stop_at_step is not None and run.step_no >= stop_at_step:
                reason = f"stopped at step {run.step_no}"
                break
            if minutes is not None and times:
                recent = sum(times[-20:]) / len(times[-20:])
                if time.perf_counter() - start + 2 * recent > minutes * 60:
                    reason = f"time budget of {minutes:g} min used"
                    break
            t0 = time.perf_counter()
            parts = run.step()
            dt = time.perf_counter() - t0
            run.train_seconds += dt
            times.append(dt)
            window_s += dt
            window_n += 1
            for k, v in parts.items():
                window[k] = window.get(k, 0.0) + v
            step, total = run.step_no, run.total
            if total is None and len(times) >= PROBE_STEPS:  # plan the run to fill the budget
                per_step = sum(times[3:]) / len(times[3:])
                left = minutes * 60 - (time.perf_counter() - start)
                run.total = total = step + max(1, int(0.95 * left / per_step))  # 5 %: evals
                say(f"planned {total} steps from {per_step:.2f} s/step and {minutes:g} min")
                run.log.write({"step": step, "planned_steps": total, "sec_per_step": per_step})
            if step % log_every == 0 or step == total:
                record = {"step": step,
                          **{k: round(v / window_n, 6) for k, v in window.items()},
                          "lr": run.opt.param_groups[0]["lr"],
                          "sec_per_step": round(window_s / window_n, 4),
                          "train_seconds": round(run.train_seconds, 1)}
                run.log.write(record)
                eta = (f", {(total - step) * record['sec_per_step'] / 60:.0f} min left"
                       if total else "")
                say(f"step {step}{f'/{total}' if total else ''}: {run.describe_step(record)}, "
                    f"{record['sec_per_step']:.2f} s/step{eta}")
                window, window_s, window_n = {}, 0.0, 0
            if step % eval_every == 0 or step == total:
                evaluate()
            if time.perf_counter() - last_ckpt > checkpoint_minutes * 60:
                run.checkpoint()
                last_ckpt = time.perf_counter()
    except KeyboardInterrupt:
        run.checkpoint()
        say(f"interrupted at step {run.step_no}; checkpoint saved in {run.out}")
        raise
    if run.last_eval is None or run.last_eval["step"] != run.step_no:
        evaluate()
    run.checkpoint()
    weights = run.save_weights(export_path) if export_path is not None else run.weights_file
    finished = run.total is not None and run.step_no >= run.total
    say(f"{'finished' if finished else reason} at step {run.step_no}"
        f"{f'/{run.total}' if run.total else ''}; weights in {weights}"
        + ("" if finished else "; run the same command again to continue"))
    return {"step": run.step_no, "total_steps": run.total, "finished": finished,
            "last_eval": run.last_eval, "train_seconds": run.train_seconds,
            "weights": str(weights), "seconds": time.perf_counter() - start}
