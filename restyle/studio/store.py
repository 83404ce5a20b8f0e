"""The studio's job store: one folder per job on disk, so results outlive the server.

::

    DATA_DIR/jobs/<id>/job.json       the job's record (status, method, parameters, progress)
    DATA_DIR/jobs/<id>/inputs/*.png   the uploaded images, decoded and re-encoded by the server
    DATA_DIR/jobs/<id>/result.png     the full-resolution result
    DATA_DIR/jobs/<id>/preview.jpg    the latest live preview (optimization methods)

Job ids are random hex strings chosen by the server; every path is built from an id
that matched :data:`ID_PATTERN` and from fixed file names, never from anything a
client sent. ``job.json`` is written atomically (a temporary file, then a rename), so a
crash leaves either the old record or the new one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import fsio
from ..errors import RestyleError

log = logging.getLogger("restyle.studio")

ID_PATTERN = re.compile(r"[0-9a-f]{16}")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
TERMINAL = (DONE, FAILED, CANCELLED)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file through a temporary file and a rename; failures are logged, not raised
    (previews and thumbnails can always be made again)."""
    try:
        fsio.write_bytes(path, data)
    except RestyleError as e:
        log.warning("%s", e)


def new_id() -> str:
    return secrets.token_hex(8)


def valid_id(job_id: str) -> bool:
    return bool(ID_PATTERN.fullmatch(job_id or ""))


@dataclass
class Job:
    """One request: what to run on which inputs, and how far it got."""

    id: str
    method: str
    task: str  # "transfer" or "texture"
    family: str  # "image-optimization" or "model-optimization"
    params: dict[str, Any]  # the parameters the client set (the rest are the method's defaults)
    #: inputs/ file names chosen by the server: {"content": "content.png" | None,
    #: "styles": [...], "masks": {field: [...]}} plus "style_names" for name-styles
    inputs: dict[str, Any]
    style_weights: list[float] | None = None
    #: the client's file names, for display only (never used as paths)
    labels: dict[str, Any] = field(default_factory=dict)
    status: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    #: True when a server stop or crash cut the job off
    interrupted: bool = False
    #: True when the result is the image at the moment of a cancel (optimization methods)
    partial: bool = False
    cancel_requested: bool = False
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None  # {"width", "height", "bytes"}
    #: {"pixels": output pixels, "bytes": memory estimate} (see jobs.job_estimate)
    estimate: dict[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Job":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class JobStore:
    """Job folders under ``root``; every method takes a validated id."""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir).expanduser()
        self.root = self.data_dir / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ paths

    def job_dir(self, job_id: str) -> Path:
        if not valid_id(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def inputs_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "inputs"

    def input_path(self, job_id: str, name: str) -> Path:
        """A file in the job's inputs/ folder; ``name`` must be a plain server-made name."""
        if not re.fullmatch(r"[a-z0-9_-]+\.(png|jpg)", name):
            raise KeyError(name)
        return self.inputs_dir(job_id) / name

    def result_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "result.png"

    def preview_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "preview.jpg"

    def thumbnail_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "thumbnail.jpg"

    # ------------------------------------------------------------------ records

    def create(self, job: Job) -> Path:
        folder = self.job_dir(job.id)
        (folder / "inputs").mkdir(parents=True, exist_ok=False)
        return folder

    def save(self, job: Job) -> None:
        folder = self.job_dir(job.id)
        if not folder.is_dir():
            return  # deleted meanwhile
        fsio.write_text(folder / "job.json", json.dumps(job.to_json(), indent=1))

    def load_all(self) -> list[Job]:
        """Every readable job, oldest first; unreadable folders are logged and skipped."""
        jobs = []
        for folder in self.root.iterdir():
            if not folder.is_dir() or not valid_id(folder.name):
                continue
            fsio.clean_stale_temps(folder)  # what a killed server was writing
            record = folder / "job.json"
            try:
                job = Job.from_json(json.loads(record.read_text()))
            except FileNotFoundError:
                # a submission that crashed before its record was written: nothing to show
                shutil.rmtree(folder, ignore_errors=True)
                continue
            except (OSError, ValueError, TypeError) as e:
                log.warning("skipping unreadable job record %s: %s", record, e)
                continue
            if job.id != folder.name:
                log.warning("skipping job record %s: id %r does not match its folder",
                            record, job.id)
                continue
            jobs.append(job)
        jobs.sort(key=lambda j: j.created)
        return jobs

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def size(self, job_id: str) -> int:
        """Bytes of the job's files on disk."""
        total = 0
        for root, _dirs, files in os.walk(self.job_dir(job_id)):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        return total
