"""The studio's job queue: a bounded queue in front of a fixed pool of worker threads.

A job runs through the public API, the task's function (:func:`restyle.api.transfer`,
:func:`restyle.api.texture`, ...) with ``callbacks=``, so the studio behaves exactly
like the CLI and the Python API. Optimization methods report a
:class:`~restyle.optimize.Progress` after every iteration: the manager keeps the
latest numbers and, at most every ``preview_interval`` seconds, a JPEG preview.
Cancelling a running optimization raises :class:`~restyle.optimize.Stop` from that
callback, which ends the run with the current image (kept as a partial result). Each job
also runs inside :func:`restyle.runtime.cancel_when`, so a cancel (or a server stop)
reaches work between callbacks too: every VGG layer and every tile checks it, which stops
a one-pass method mid-pass.

The queue holds at most ``queue_size`` waiting jobs; :meth:`JobManager.submit` raises
:class:`QueueFull` (the HTTP layer's 429) rather than growing a backlog. Each job carries a
memory estimate (:func:`job_estimate`): one that alone exceeds ``memory_budget`` is refused
(:class:`JobTooLarge`, 413), and a worker starts a job only when its estimate fits next to
those of the running jobs. Finished jobs are removed oldest first beyond ``keep_jobs`` or
``keep_bytes`` of files. When the server
starts, jobs that a stop or crash left queued or running are marked failed with
``interrupted=True`` and a reason, never lost silently nor left "running".
"""

from __future__ import annotations

import collections
import io
import logging
import math
import statistics
import threading
import time
import traceback
from typing import Any

from .. import imaging, run
from ..errors import RestyleError
from ..methods import get_method
from ..methods.texture import parse_size
from ..optimize import Progress, Stop
from ..params import fields_of_kind
from ..runtime import cancel_when, physical_memory
from .store import (CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job, JobStore,
                    write_bytes_atomic)

log = logging.getLogger("restyle.studio")

INTERRUPTED_RUNNING = ("interrupted: the studio server stopped while this job was running; "
                       "submit it again")
INTERRUPTED_QUEUED = ("interrupted: the studio server stopped before this job started; "
                      "submit it again")


class QueueFull(Exception):
    """The queue holds ``queue_size`` jobs already; try again in ``retry_after`` seconds."""

    def __init__(self, queued: int, retry_after: int):
        super().__init__(f"the queue is full ({queued} jobs waiting); try again in "
                         f"{retry_after} s")
        self.retry_after = retry_after


class NotCancellable(Exception):
    pass


class JobTooLarge(Exception):
    """A job whose memory estimate alone exceeds the budget (the HTTP layer's 413)."""


#: Memory a job takes per output pixel, by family, and for the methods that take more:
#: BENCHMARKS.md's peak memory at 1024 px less the weights and interpreter, rounded up
#: (gatys 3.0 GB, texture 4.0 GB, mrf 5.0 GB, portrait 6.4 GB, analogy 8.7 GB, wct 4.5 GB
#: at about a megapixel).
BYTES_PER_PIXEL = {"image-optimization": 4096, "model-optimization": 2048}
METHOD_BYTES_PER_PIXEL = {"texture": 4608, "mrf": 5120, "wct": 5120, "portrait": 7168,
                          "analogy": 12288}
#: What any job takes besides its pixels (network weights, the interpreter's share).
BASE_BYTES = 512 * 2**20
#: One-pass methods run in tiles above 1600 px (restyle/tiling.py), so beyond that their
#: memory grows only by the whole-image buffers: 4096 px AdaIN peaks at 2.4 GB (README).
TILED_PIXELS = 1600 * 1600
TILED_BYTES_PER_PIXEL = 160


def output_pixels(p) -> int:
    """Pixels of a job's output from its parameters: a ``size`` parameter as a long side
    (its square: the aspect is not known before the upload is decoded) or a ``canvas``
    (WxH, validated already by the field's own check)."""
    pixels = 0
    for f in fields_of_kind(type(p), "size", "canvas"):
        value = getattr(p, f.name)
        w, h = parse_size(value) if f.metadata["kind"] == "canvas" else (value, value)
        pixels = max(pixels, int(w) * int(h))
    return pixels


def job_estimate(method: str, family: str, p) -> dict[str, int]:
    """{"pixels", "bytes"}: the output's pixels and the memory the job is expected to take."""
    pixels = output_pixels(p)
    per_pixel = METHOD_BYTES_PER_PIXEL.get(method, BYTES_PER_PIXEL.get(family, 4096))
    if family == "model-optimization" and pixels > TILED_PIXELS:
        need = per_pixel * TILED_PIXELS + TILED_BYTES_PER_PIXEL * (pixels - TILED_PIXELS)
    else:
        need = per_pixel * pixels
    return {"pixels": pixels, "bytes": BASE_BYTES + need}


def default_memory_budget() -> int:
    ram = physical_memory()
    return int(ram * 0.75) if ram else 8 * 2**30


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


class JobManager:
    """Jobs in memory (mirrored to the :class:`JobStore`), a bounded queue and workers."""

    def __init__(self, store: JobStore, workers: int = 1, queue_size: int = 8,
                 preview_interval: float = 0.5, preview_side: int = 768,
                 keep_jobs: int = 500, keep_bytes: int = 2 * 2**30,
                 memory_budget: int | None = None):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.store = store
        self.workers = workers
        self.queue_size = queue_size
        self.preview_interval = preview_interval
        self.preview_side = preview_side
        self.keep_jobs = keep_jobs
        self.keep_bytes = keep_bytes
        self.memory_budget = memory_budget or default_memory_budget()
        self._sizes: dict[str, int] = {}  # bytes of each job's files
        self._stuck: list[threading.Thread] = []  # workers still in a job after stop()
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[str] = collections.deque()
        self._jobs: dict[str, Job] = {}
        self._versions: dict[str, int] = {}
        self._previews: dict[str, tuple[int, bytes]] = {}
        self._durations: collections.deque[float] = collections.deque(maxlen=20)
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.peak_queued = 0  # the longest the queue has been (shows the bound holds)
        self.rejected = 0  # submissions answered "queue full"
        self._recover()

    # ------------------------------------------------------------------ start, stop

    def _recover(self) -> None:
        """Load the store; jobs a stop or crash cut off become failed, interrupted."""
        for job in self.store.load_all():
            if job.status in (QUEUED, RUNNING):
                was_running = job.status == RUNNING
                job.status = FAILED
                job.interrupted = True
                job.error = INTERRUPTED_RUNNING if was_running else INTERRUPTED_QUEUED
                job.finished = job.finished or time.time()
                self.store.save(job)
                log.info("job %s marked interrupted", job.id)
            self._jobs[job.id] = job
            self._versions[job.id] = _next_version(0)
            self._sizes[job.id] = self.store.size(job.id)
            if self.store.preview_path(job.id).is_file() and job.progress:
                try:
                    data = self.store.preview_path(job.id).read_bytes()
                    self._previews[job.id] = (int(job.progress.get("step", 0)), data)
                except OSError:
                    pass

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            self._stopping = False
            for i in range(self.workers):
                t = threading.Thread(target=self._work, name=f"restyle-studio-worker-{i}",
                                     daemon=True)
                t.start()
                self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the workers: running jobs end at their next iteration, network layer or
        tile; every job still queued or running is marked failed, interrupted (as after
        a crash)."""
        with self._lock:
            self._stopping = True
            for job_id in list(self._queue):
                self._interrupt(self._jobs[job_id], INTERRUPTED_QUEUED)
            self._queue.clear()
            self._wake.notify_all()
            threads, self._threads = self._threads, []
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._stuck = [t for t in threads if t.is_alive()]
        with self._lock:
            for job in self._jobs.values():
                if job.status == RUNNING:  # a one-pass method still inside its forward pass
                    self._interrupt(job, INTERRUPTED_RUNNING)

    def _interrupt(self, job: Job, reason: str) -> None:
        job.status, job.interrupted, job.error = FAILED, True, reason
        job.finished = time.time()
        self._changed(job)

    # ------------------------------------------------------------------ queries

    def get(self, job_id: str) -> Job:
        with self._lock:
            return self._jobs[job_id]

    def snapshot(self, job_id: str) -> tuple[dict[str, Any], int, int | None]:
        """A copy of the job's record, its version and its place in the queue (1 = next)."""
        with self._lock:
            job = self._jobs[job_id]
            position = None
            if job.status == QUEUED:
                try:
                    position = self._queue.index(job_id) + 1
                except ValueError:
                    position = None
            return job.to_json(), self._versions.get(job_id, 0), position

    def version(self, job_id: str) -> int:
        with self._lock:
            if job_id not in self._jobs:
                raise KeyError(job_id)
            return self._versions.get(job_id, 0)

    def list(self, limit: int = 100) -> list[str]:
        """Job ids, newest first."""
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)
            return [j.id for j in jobs[:limit]]

    def preview(self, job_id: str) -> tuple[int, bytes] | None:
        with self._lock:
            return self._previews.get(job_id)

    def busy(self) -> bool:
        """Whether a worker is still inside a job after :meth:`stop` (a forward pass that
        does not check for cancellation): the process should then exit without waiting."""
        return any(t.is_alive() for t in self._stuck)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            running = [j for j in self._jobs.values() if j.status == RUNNING]
            return {"workers": self.workers, "queue_size": self.queue_size,
                    "queued": len(self._queue), "running": len(running),
                    "peak_queued": self.peak_queued, "rejected": self.rejected,
                    "jobs": len(self._jobs), "stored_bytes": sum(self._sizes.values()),
                    "memory_reserved": self._reserved()}

    def _reserved(self) -> int:
        """The memory estimates of the running jobs, together."""
        return sum((j.estimate or {}).get("bytes", 0) for j in self._jobs.values()
                   if j.status == RUNNING)

    def retry_after(self) -> int:
        """Seconds until a queue slot is likely free: the median recent job time per
        worker, at least 1 and at most 10 minutes."""
        with self._lock:
            typical = statistics.median(self._durations) if self._durations else 5.0
        return int(min(600, max(1, math.ceil(typical / self.workers))))

    # ------------------------------------------------------------------ changes

    def check_capacity(self, memory: int = 0) -> None:
        """Raise now if a submission would be refused (before uploads are decoded and
        stored): :class:`JobTooLarge` when its memory estimate alone exceeds the budget,
        :class:`QueueFull` when the queue is at its bound."""
        if memory > self.memory_budget:
            raise JobTooLarge(f"this job needs about {gib(memory)} of memory; the studio runs "
                              f"jobs of up to {gib(self.memory_budget)} (lower the size)")
        with self._lock:
            if len(self._queue) >= self.queue_size:
                self.rejected += 1
                raise QueueFull(len(self._queue), self.retry_after())

    def submit(self, job: Job) -> None:
        """Queue a job whose folder and inputs are in the store; :class:`QueueFull` when
        the queue is at its bound (the caller removes the folder)."""
        with self._lock:
            if self._stopping:
                raise RestyleError("the studio is shutting down")
            if len(self._queue) >= self.queue_size:
                self.rejected += 1
                raise QueueFull(len(self._queue), self.retry_after())
            job.status = QUEUED
            self._jobs[job.id] = job
            self._sizes[job.id] = self.store.size(job.id)
            self._queue.append(job.id)
            self.peak_queued = max(self.peak_queued, len(self._queue))
            self._changed(job)
            self._prune()
            self._wake.notify()

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once, or ask a running one to stop; a finished job
        raises :class:`NotCancellable`."""
        with self._lock:
            job = self._jobs[job_id]
            if job.status == QUEUED:
                self._queue.remove(job_id)
                job.status, job.finished, job.cancel_requested = CANCELLED, time.time(), True
                self._changed(job)
            elif job.status == RUNNING:
                if not job.cancel_requested:
                    job.cancel_requested = True
                    self._changed(job)
            else:
                raise NotCancellable(f"job {job_id} is already {job.status}")
            return job

    def delete(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job.status in (QUEUED, RUNNING):
                raise NotCancellable(f"job {job_id} is {job.status}; cancel it first")
            del self._jobs[job_id]
            self._versions.pop(job_id, None)
            self._previews.pop(job_id, None)
            self._sizes.pop(job_id, None)
        self.store.delete(job_id)

    def _changed(self, job: Job, persist: bool = True) -> None:
        with self._lock:
            self._versions[job.id] = _next_version(self._versions.get(job.id, 0))
            if persist:
                self.store.save(job)

    def _prune(self) -> None:
        """Keep at most ``keep_jobs`` jobs and ``keep_bytes`` of their files: the oldest
        finished ones go first (the newest finished job stays, whatever its size)."""
        finished = sorted((j for j in self._jobs.values() if j.terminal), key=lambda j: j.created)
        total = sum(self._sizes.values())
        for job in finished[:-1] if finished else []:
            if len(self._jobs) <= self.keep_jobs and total <= self.keep_bytes:
                break
            total -= self._sizes.pop(job.id, 0)
            del self._jobs[job.id]
            self._versions.pop(job.id, None)
            self._previews.pop(job.id, None)
            self.store.delete(job.id)

    # ------------------------------------------------------------------ work

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and not (self._queue and self._fits(self._queue[0])):
                    self._wake.wait(1.0)
                if self._stopping:
                    return
                job = self._jobs[self._queue.popleft()]
                job.status, job.started = RUNNING, time.time()
                self._changed(job)
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._wake.notify_all()  # its memory is free: a waiting job may fit

    def _fits(self, job_id: str) -> bool:
        """Whether the job's memory estimate fits next to the running jobs' (a job alone
        always may run: it was admitted below the budget)."""
        need = (self._jobs[job_id].estimate or {}).get("bytes", 0)
        reserved = self._reserved()
        return reserved == 0 or reserved + need <= self.memory_budget

    def _run(self, job: Job) -> None:
        start = time.perf_counter()
        last_preview = [0.0]
        last_saved = [0.0]

        def on_progress(p: Progress) -> None:
            if job.cancel_requested or self._stopping:
                raise Stop()
            now = time.perf_counter()
            progress = {"step": p.step, "steps": p.steps, "level": p.level, "levels": p.levels,
                        "iteration": p.iteration, "iterations": p.iterations,
                        "size": [int(p.size[1]), int(p.size[0])], "loss": _finite(p.loss),
                        "parts": {k: _finite(v) for k, v in p.parts.items()},
                        "elapsed": round(now - start, 3)}
            if p.remaining is not None:  # a run with a time budget (anytime)
                progress["remaining"] = round(p.remaining, 3)
            preview = None
            final = p.step == p.steps or p.iteration == p.iterations
            if final or now - last_preview[0] >= self.preview_interval:
                last_preview[0] = now
                preview = self._encode_preview(p.image)
            save = now - last_saved[0] >= 5.0
            if save and preview is not None:  # on disk before the record that mentions it
                write_bytes_atomic(self.store.preview_path(job.id), preview)
            with self._lock:
                if preview is not None:
                    self._previews[job.id] = (p.step, preview)
                latest = self._previews.get(job.id)
                if latest is not None:
                    progress["preview_step"] = latest[0]
                job.progress = progress
                self._changed(job, persist=save)
            if save:
                last_saved[0] = now

        try:
            with cancel_when(lambda: job.cancel_requested or self._stopping):
                result = self._call(job, on_progress)
        except Stop:
            result = None  # a method that let Stop through: cancelled without an image
        except RestyleError as e:
            return self._finish(job, FAILED, error=str(e), start=start)
        except FloatingPointError as e:
            return self._finish(job, FAILED, error=str(e), start=start)
        except MemoryError:
            return self._finish(job, FAILED, error="out of memory; try a smaller size",
                                start=start)
        except Exception as e:  # a bug: keep the server up, tell the user, log the trace
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            return self._finish(job, FAILED, error=f"internal error: {type(e).__name__}: {e}",
                                start=start)
        if self._stopping and job.status == RUNNING:
            return self._finish(job, FAILED, error=INTERRUPTED_RUNNING, start=start,
                                interrupted=True)
        if job.cancel_requested:
            partial = result is not None and get_method(job.method).iterates()
            if partial:
                self._save_result(job, result)
            return self._finish(job, CANCELLED, start=start, partial=partial)
        try:
            self._save_result(job, result)
        except RestyleError as e:
            return self._finish(job, FAILED, error=str(e), start=start)
        self._durations.append(time.perf_counter() - start)
        self._finish(job, DONE, start=start)

    def _call(self, job: Job, on_progress) -> Any:
        """The job as a :func:`restyle.run.request` (the stored inputs, the client's
        parameters and the mask files' paths), run with ``on_progress``."""
        inputs_dir = self.store.inputs_dir(job.id)
        params = dict(job.params)
        for name, files in (job.inputs.get("masks") or {}).items():
            params[name] = ",".join(str(inputs_dir / f) for f in files)
        content = job.inputs.get("content")
        styles = (list(job.inputs.get("style_names") or [])
                  or [str(inputs_dir / f) for f in job.inputs.get("styles", [])])
        req = run.request(job.method, str(inputs_dir / content) if content else None, styles,
                          style_weights=job.style_weights, params=params)
        return run.execute(req, [on_progress])

    def _save_result(self, job: Job, image) -> None:
        path = self.store.result_path(job.id)
        imaging.save_image(image, path)
        job.result = {"width": image.width, "height": image.height,
                      "bytes": path.stat().st_size}
        if "auto" in image.info:  # what auto=True chose (restyle.autotune)
            job.result["auto"] = image.info["auto"]

    def _finish(self, job: Job, status: str, start: float, error: str | None = None,
                partial: bool = False, interrupted: bool = False) -> None:
        preview = self.preview(job.id)
        if preview is not None:  # on disk before the job says it has finished
            write_bytes_atomic(self.store.preview_path(job.id), preview[1])
        with self._lock:
            job.status, job.error, job.partial = status, error, partial
            job.interrupted = interrupted
            job.finished = time.time()
            if job.progress is not None:
                job.progress["elapsed"] = round(time.perf_counter() - start, 3)
            self._changed(job)
            if job.id in self._jobs:
                self._sizes[job.id] = self.store.size(job.id)
                self._prune()

    def _encode_preview(self, image) -> bytes:
        img = imaging.to_pil(image)
        if max(img.size) > self.preview_side:
            img = imaging.resize(img, imaging.fit_size(*img.size, self.preview_side))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        return buf.getvalue()


def _next_version(previous: int) -> int:
    """A job's version after a change: it only grows, also across server restarts (it
    follows the clock in microseconds), so a client can drop answers that arrive late."""
    return max(previous + 1, time.time_ns() // 1000)


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
