"""The studio's job queue: a bounded queue in front of a fixed pool of worker threads.

A job runs through the public API, the task's function (:func:`restyle.api.transfer`,
:func:`restyle.api.texture`, ...) with ``callbacks=``, so the studio behaves exactly
like the CLI and the Python API. Optimization methods report a
:class:`~restyle.optimize.Progress` after every iteration: the manager keeps the
latest numbers and, at most every ``preview_interval`` seconds, a JPEG preview.
Cancelling a running optimization raises :class:`~restyle.optimize.Stop` from that
callback, which ends the run with the current image (kept as a partial result).

The queue holds at most ``queue_size`` waiting jobs; :meth:`JobManager.submit` raises
:class:`QueueFull` (the HTTP layer's 429) rather than growing a backlog. When the server
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

from .. import imaging
from ..errors import RestyleError
from ..optimize import Progress, Stop
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


class JobManager:
    """Jobs in memory (mirrored to the :class:`JobStore`), a bounded queue and workers."""

    def __init__(self, store: JobStore, workers: int = 1, queue_size: int = 8,
                 preview_interval: float = 0.5, preview_side: int = 768,
                 keep_jobs: int = 500):
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

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers: running optimizations end at their next iteration; every
        job still queued or running is marked failed, interrupted (as after a crash)."""
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

    def stats(self) -> dict[str, Any]:
        with self._lock:
            running = sum(1 for j in self._jobs.values() if j.status == RUNNING)
            return {"workers": self.workers, "queue_size": self.queue_size,
                    "queued": len(self._queue), "running": running,
                    "peak_queued": self.peak_queued, "rejected": self.rejected,
                    "jobs": len(self._jobs)}

    def retry_after(self) -> int:
        """Seconds until a queue slot is likely free: the median recent job time per
        worker, at least 1 and at most 10 minutes."""
        with self._lock:
            typical = statistics.median(self._durations) if self._durations else 5.0
        return int(min(600, max(1, math.ceil(typical / self.workers))))

    # ------------------------------------------------------------------ changes

    def check_capacity(self) -> None:
        """Raise :class:`QueueFull` now if a submission would be refused (before uploads
        are decoded and stored)."""
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
        self.store.delete(job_id)

    def _changed(self, job: Job, persist: bool = True) -> None:
        with self._lock:
            self._versions[job.id] = _next_version(self._versions.get(job.id, 0))
            if persist:
                self.store.save(job)

    def _prune(self) -> None:
        """Keep at most ``keep_jobs`` jobs: the oldest finished ones go first."""
        excess = len(self._jobs) - self.keep_jobs
        if excess <= 0:
            return
        finished = sorted((j for j in self._jobs.values() if j.terminal), key=lambda j: j.created)
        for job in finished[:excess]:
            del self._jobs[job.id]
            self._versions.pop(job.id, None)
            self._previews.pop(job.id, None)
            self.store.delete(job.id)

    # ------------------------------------------------------------------ work

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job = self._jobs[self._queue.popleft()]
                job.status, job.started = RUNNING, time.time()
                self._changed(job)
            self._run(job)

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
                if preview is not None:
                    write_bytes_atomic(self.store.preview_path(job.id), preview)

        try:
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
            partial = result is not None and job.family == "image-optimization"
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
        """The task's API function (``restyle.api.transfer``, ``texture``, ``dream``, ...)
        with the stored inputs, the client's parameters and the mask files' paths."""
        from .catalog import task_inputs

        wants = task_inputs(job.task)
        inputs_dir = self.store.inputs_dir(job.id)
        params = dict(job.params)
        for name, files in (job.inputs.get("masks") or {}).items():
            params[name] = ",".join(str(inputs_dir / f) for f in files)
        args = []
        for name in wants["positional"]:
            if name == wants["content"]:
                args.append(str(inputs_dir / job.inputs["content"]))
            elif name == wants["styles"]:
                args.append(list(job.inputs.get("style_names") or [])
                            or [str(inputs_dir / f) for f in job.inputs.get("styles", [])])
        if wants["weights"] and job.style_weights is not None:
            params[wants["weights"]] = job.style_weights
        return wants["function"](*args, method=job.method, callbacks=[on_progress], **params)

    def _save_result(self, job: Job, image) -> None:
        path = self.store.result_path(job.id)
        imaging.save_image(image, path)
        job.result = {"width": image.width, "height": image.height,
                      "bytes": path.stat().st_size}

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
