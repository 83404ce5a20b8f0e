"""Batch: stylise many images and videos with one method, resumable, in-process or on Ray.

``restyle batch INPUTS... -o OUT_DIR --method M --style S`` (and :func:`restyle.api.batch`)
takes folders (searched recursively), glob patterns, single files and text files that
list paths, and writes one output per input under ``OUT_DIR``:

* **Names.** The input's path relative to its folder (the glob's fixed part, or the
  deepest folder common to a list's entries) is mirrored under ``OUT_DIR``, each part
  sanitised (only letters, digits, ``_ - . ~ space``; no leading dot, so no ``..`` and no
  hidden files) and the suffix replaced (``.png`` by default, ``--format``; videos keep
  their container or become ``.mp4``). Two inputs that would get the same name: the later
  one gets ``~`` and 8 hex digits of its path's hash. A name, once given, is kept in the
  manifest, so it never changes between runs. Nothing is written outside ``OUT_DIR``, also
  not through a symbolic link inside it.
* **Manifest.** ``OUT_DIR/restyle-batch.sqlite`` has a row per input: path, size and
  modification time, content hash (SHA-256 of the file), the hash of the parameters that
  produced its output (canonical JSON of the method, its parameters, the styles' content
  hashes and weights, the format, the model files' hashes; for videos also the video
  options), status (``pending``, ``done``, ``failed``), output path, seconds, error and
  worker. Only the driver writes it, one commit per finished item.
* **Reruns.** An item is skipped when its row is ``done`` with the same parameter hash,
  the input's size and modification time are unchanged and the output exists (a touched
  but identical file is hashed and skipped). Changing parameters reprocesses only the
  items they affect (video options: only videos); the output path stays the same and the
  file is replaced atomically. Inputs that failed are not retried while neither the file
  nor the parameters change (``--retry-failed`` retries them), except items that failed
  for a transient reason (no space left, an I/O error, out of memory): those are retried
  by every run. A killed run resumes: its
  finished items are recorded, the rest are pending, and an unfinished video continues
  from its last finished frame.
* **Failures.** A bad input (missing, not an image, damaged, too large, too small for the
  method) is recorded ``failed`` with its one-line reason and the batch goes on. When the
  first items all fail with the same error (a missing decoder, an unknown style name), the
  run stops with that error instead of recording it everywhere.
* **Outputs** are written under a temporary name and renamed (:func:`restyle.imaging.save_image`,
  the video pipeline's own work folder), so no reader sees a half-written file; temporary
  files a killed worker leaves are removed when the next run starts.
* **Engines.** ``local``: this process, the method's models loaded once and shared by a pool
  of ``workers`` threads (default: the cores), each with ``cores / workers`` torch threads,
  at most two items per worker in flight. ``ray``: Ray Data ``map_batches`` over an actor
  pool; each actor loads the models once, batches stream with backpressure, a dead actor
  is restarted and its batch retried (outputs are idempotent, the manifest is keyed by
  input, so the outcome is exactly once). Without ``address`` a local Ray is started that
  listens on loopback only; ``address`` joins a running cluster, whose nodes must see
  INPUTS and OUT_DIR at the same paths (a shared file system) and have restyle installed.

Videos are stylised by :func:`restyle.video.stylize_video` as one item each (temporally
consistent over the whole clip, resumable frame by frame); see ``docs/batch.md``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import glob
import hashlib
import logging
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from . import fsio, imaging, run
from .errors import RestyleError
from .methods.network import default_model
from .nets.stylenet import get_stylenet, resolve_model
from .params import make
from .run import canonical, file_hash, fingerprint
from .runtime import keep_freed_memory
from .video import FRAME_SUFFIXES, VIDEO_OUTPUTS, split_params, stylize_video, work_dir

RAY_HINT = "pip install 'restyle[ray]'"
MANIFEST = "restyle-batch.sqlite"
IMAGE_SUFFIXES = FRAME_SUFFIXES | {".gif"}
VIDEO_SUFFIXES = set(VIDEO_OUTPUTS) | {".avi"}
LIST_SUFFIXES = {".txt", ".lst", ".list"}
FORMATS = ("png", "jpg", "webp")
PENDING, DONE, FAILED = "pending", "done", "failed"
#: Stop the run when this many first results (or all, if fewer) fail with the same error.
SAME_ERROR_STOP = 4


# ----------------------------------------------------------------------------- inputs

@dataclass
class Item:
    """One input file and where its output goes."""

    path: Path  # as found (absolute)
    rel: tuple[str, ...]  # its path relative to its input's base folder, unsanitised
    kind: str  # "image", "video" or "other" (recorded as failed: not a format restyle reads)

    @property
    def key(self) -> str:
        """The manifest's key: the absolute path, as text even for undecodable names."""
        return text_of(self.path)


def text_of(path: str | os.PathLike) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else "other"


def _media(path: Path) -> bool:
    return kind_of(path) != "other"


def _walk(folder: Path, skip: Path | None) -> Iterable[Path]:
    """Image and video files under ``folder`` (no hidden ones), not under ``skip``."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (skip is None or (here / d).resolve() != skip))
        for name in sorted(files):
            p = here / name
            if not name.startswith(".") and _media(p) and p.is_file():
                yield p


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _relative(path: Path, base: Path) -> tuple[str, ...]:
    return Path(os.path.relpath(path, base)).parts


def collect(specs: Sequence[str | os.PathLike], out_dir: Path) -> list[Item]:
    """The items named by ``specs`` (folders, globs, files, list files), de-duplicated,
    in a stable order; files inside ``out_dir`` are never inputs."""
    out_real = Path(out_dir).resolve()
    found: dict[str, Item] = {}

    def add(path: Path, base: Path) -> None:
        path = Path(os.path.abspath(path))
        real = path.resolve()
        if real == out_real or out_real in real.parents:
            return
        item = Item(path, _relative(path, base), kind_of(path))
        found.setdefault(item.key, item)

    for spec in specs:
        text = os.fspath(spec)
        p = Path(text).expanduser()
        if p.is_dir():
            for f in _walk(p, out_real):
                add(f, p)
        elif glob.has_magic(text) and not p.exists():
            matches = sorted(m for m in glob.glob(os.path.expanduser(text), recursive=True)
                             if Path(m).is_file())
            if not matches:
                raise RestyleError(f"no files match {text}")
            base = _glob_base(os.path.expanduser(text))
            for m in matches:
                add(Path(m), base)
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            for f, base in _read_list(p, out_real):
                add(f, base)
        elif p.is_file():
            add(p, p.parent)
        elif p.exists():
            raise RestyleError(f"input {text} is not a file or folder")
        else:
            raise RestyleError(f"input not found: {text}")
    if not found:
        raise RestyleError("no images or videos found in " + ", ".join(map(os.fspath, specs)))
    return sorted(found.values(), key=lambda i: i.key)


def _read_list(path: Path, out_real: Path) -> list[tuple[Path, Path]]:
    """(file, base folder) for each line of a list file: paths (relative ones from the
    list's folder) or folders; blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError as e:
        raise RestyleError(f"cannot read the list {path}: {e.strerror or e}") from None
    entries = [Path(os.path.abspath(path.parent / line.strip())) for line in lines
               if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise RestyleError(f"the list {path} names no files")
    files, folders = [], []
    for e in entries:
        (folders if e.is_dir() else files).append(e)
    # missing entries are kept (recorded as failed) but do not move the base folder
    present = [f.parent for f in files if f.exists()] + folders
    base = Path(os.path.commonpath(present)) if present else path.parent
    out = [(f, base) for f in files]
    for folder in folders:
        out += [(f, base) for f in _walk(folder, out_real)]
    return out


# ----------------------------------------------------------------------------- output names

_UNSAFE = re.compile(r"[^\w.\-~ ]")


def safe_part(part: str) -> str:
    """One path component made safe: letters, digits, ``_ - . ~ space``; no leading or
    trailing dots or spaces (so never ``.``, ``..`` or a hidden name); at most ~100 bytes."""
    text = unicodedata.normalize("NFC", part.encode("utf-8", "surrogateescape")
                                 .decode("utf-8", "replace"))
    s = _UNSAFE.sub("_", text).strip(" .") or "_"
    if len(s.encode()) > 100:
        s = s[:60].rstrip(" .") + "~" + hashlib.sha1(part.encode("utf-8", "surrogateescape"))\
            .hexdigest()[:8]
    return s


def output_name(item: Item, suffix: str) -> str:
    """The output's path relative to OUT_DIR (POSIX separators), before collisions."""
    *folders, name = item.rel
    stem = Path(name).stem if Path(name).suffix else name
    return "/".join([safe_part(f) for f in folders] + [safe_part(stem) + suffix])


def _with_tag(rel: str, key: str) -> str:
    head, _, name = rel.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    tagged = f"{stem}~{hashlib.sha1(key.encode()).hexdigest()[:8]}.{suffix}"
    return f"{head}/{tagged}" if head else tagged


def inside(out_dir: Path, rel: str) -> Path:
    """``out_dir / rel``, refusing anything that would land outside ``out_dir`` (a
    symbolic link among the existing folders included)."""
    path = out_dir / rel
    parent = path.parent
    while not parent.exists() and parent != out_dir:
        parent = parent.parent
    root = out_dir.resolve()
    real = parent.resolve()
    if real != root and root not in real.parents:
        raise RestyleError(f"output {rel} would be written outside {out_dir} (through "
                           f"{parent}); not written")
    return path


# ----------------------------------------------------------------------------- settings

@dataclass
class Job:
    """What every item is stylised with; plain data, so it travels to Ray workers."""

    method: str
    params: dict  # the method's parameters, all of them (defaults filled in; paths absolute)
    video: dict  # VideoParams, all of them
    styles: list[str]  # style image paths (absolute) or, for name styles, names
    weights: list[float] | None
    format: str = "png"
    #: content hashes of the files that parameters name (model, decoder, masks), by
    #: parameter, and of the style images, by path: outputs depend on contents, not names
    files: dict = field(default_factory=dict)

    def settings(self, kind: str) -> dict:
        """What an output of ``kind`` depends on, besides its input."""
        base = {"method": self.method, "params": {**self.params, **self.files},
                "styles": [self.files.get(s, s) for s in self.styles],
                "weights": self.weights}
        if kind == "video":
            return {**base, "video": self.video}
        return {**base, "format": self.format}

    def params_hash(self, kind: str) -> str:
        return fingerprint(self.settings(kind))

    def suffix(self, item: Item) -> str:
        if item.kind == "video":
            s = item.path.suffix.lower()
            return s if s in VIDEO_OUTPUTS else ".mp4"
        return "." + self.format


def make_job(method: str, styles: Sequence, style_weights: Sequence[float] | None,
             fmt: str, params: dict) -> Job:
    """Validate the method, its parameters, the styles and the format (RestyleError with
    one line each) and fix everything that outputs depend on."""
    m = run.method_for(method, "transfer", use="batch")
    if fmt not in FORMATS:
        raise RestyleError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    vp, method_params = split_params(params)
    p = make(m.Params, **method_params)
    style_list = [os.fspath(s) if isinstance(s, os.PathLike) else s for s in run.as_list(styles)]
    if not style_list:
        raise RestyleError("give a style: --style IMAGE (or a style name of the model, "
                           "see `restyle models`)")
    if m.takes.styles == "images" and not all(isinstance(s, str) for s in style_list):
        raise RestyleError("batch takes style images as file paths")
    req = run.request(m, run.PER_ITEM, style_list,
                      style_weights=style_weights, params=p)
    files: dict[str, str] = {}
    styles_out = req.styles
    if m.takes.styles == "images":
        req.style_images()  # readable: a one-line error now, not later
        styles_out = [os.path.abspath(s) for s in style_list]
        files.update({path: file_hash(path) for path in styles_out})
    values, hashes = run.file_params(p)  # masks, maps, weights, decoder: absolute, hashed
    files.update(hashes)
    if m.takes.styles == "names":  # the model's file, and the names in it, now
        model = resolve_model(p.model or default_model())
        values["model"], files["model"] = os.path.abspath(model), file_hash(model)
        net = get_stylenet(str(model))
        for n in styles_out:
            net.style_index(n)
    return Job(m.name, values, dataclasses.asdict(vp), styles_out, req.weights, fmt, files)


# ----------------------------------------------------------------------------- the worker

def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, RestyleError) else f"{type(e).__name__}: {text}"[:500]


class Runner:
    """Stylises items one by one; the method's models and the styles are loaded once.

    Used by both engines: the local engine shares one Runner between its threads, each
    Ray actor has its own. ``__call__`` never raises for a bad item; it returns a result
    dict (``key``, ``status``, ``hash``, ``seconds``, ``error``, ``worker``).
    """

    def __init__(self, job: Job | dict, threads: int = 0):
        keep_freed_memory()  # Ray actors are processes of their own
        if threads:
            torch.set_num_threads(threads)
        self.job = job if isinstance(job, Job) else Job(**job)
        self.request = run.request(self.job.method, run.PER_ITEM, self.job.styles,
                                   style_weights=self.job.weights, params=self.job.params)
        self.request.style_images()  # loaded once, for every item
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, item: dict) -> dict:
        start = time.perf_counter()
        # stage: "input" while the input is read, "method" from then on (only failures of
        # the method can be the settings' fault; see _execute)
        result = {"key": item["key"], "status": DONE, "hash": None, "error": None,
                  "worker": self.worker, "stage": "input", "transient": False}
        try:
            path = Path(os.fsdecode(item["path"]))
            if item["kind"] == "other":
                raise RestyleError(f"{path} is not an image or video file restyle reads "
                                   f"(suffix {path.suffix or 'none'})")
            if not path.is_file():
                raise RestyleError(f"input not found: {path}")
            result["hash"] = file_hash(path)
            if item.get("expect_hash") and item["expect_hash"] == result["hash"]:
                result["status"] = "unchanged"  # touched, not changed: the output stands
            elif item["kind"] == "video":
                result["stage"] = "method"
                self._video(path, Path(item["output"]))
            else:
                content = imaging.load_image(path, "input image")
                result["stage"] = "method"
                run.execute(self.request, content=content, output=Path(item["output"]))
        except (KeyboardInterrupt, SystemExit):
            raise
        except MemoryError:
            result.update(status=FAILED, error="out of memory", transient=True)
        except Exception as e:  # a bad item is recorded; the batch goes on
            # a full disk or an I/O error is not the input's fault: retried on the next run
            result.update(status=FAILED, error=_one_line(e), transient=fsio.is_transient(e))
        result["seconds"] = time.perf_counter() - start
        return result

    def _video(self, path: Path, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        req = self.request
        styles = req.style_images() or req.styles  # the images, loaded once, or the names
        kw = dict(method=self.job.method, style_weights=req.weights, overwrite=True,
                  **self.job.params, **self.job.video)
        try:
            stylize_video(path, styles, out, resume=True, **kw)
        except RestyleError:
            # an unfinished run with other settings (or of another version of the input)
            # cannot be continued: start this video afresh, once
            if not work_dir(out).exists():
                raise
            shutil.rmtree(work_dir(out), ignore_errors=True)
            stylize_video(path, styles, out, resume=False, **kw)


class RayRunner:
    """The Ray actor: a :class:`Runner` over a batch of items (a dict of columns)."""

    def __init__(self, job: dict, threads: int = 1):
        self.runner = Runner(job, threads)

    def __call__(self, batch: dict) -> dict:
        n = len(batch["key"])
        rows = [self.runner({k: _plain(v[i]) for k, v in batch.items()}) for i in range(n)]
        return {k: [r[k] for r in rows] for k in ("key", "status", "hash", "seconds", "error",
                                                  "worker", "stage", "transient")}


def _plain(v):
    """A numpy scalar from a Ray batch as a plain Python value."""
    return v.item() if hasattr(v, "item") else v


# ----------------------------------------------------------------------------- the manifest

class Manifest:
    """The SQLite record of a batch in ``OUT_DIR`` (see the module docstring)."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / MANIFEST
        self.db = None
        with self.errors():
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript("""
                CREATE TABLE IF NOT EXISTS items (
                    key TEXT PRIMARY KEY, kind TEXT, size INTEGER, mtime_ns INTEGER,
                    hash TEXT, params_hash TEXT, status TEXT, output TEXT, seconds REAL,
                    error TEXT, worker TEXT, attempts INTEGER DEFAULT 0, updated REAL);
                CREATE TABLE IF NOT EXISTS params (
                    params_hash TEXT PRIMARY KEY, kind TEXT, settings TEXT);
                CREATE TABLE IF NOT EXISTS runs (
                    id INTEGER PRIMARY KEY, started REAL, finished REAL, engine TEXT,
                    items INTEGER, done INTEGER, skipped INTEGER, failed INTEGER,
                    seconds REAL, interrupted INTEGER);
            """)
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(items)")}
            if "transient" not in columns:  # a manifest of an earlier restyle
                self.db.execute("ALTER TABLE items ADD COLUMN transient INTEGER DEFAULT 0")

    @contextlib.contextmanager
    def errors(self):
        """SQLite errors (a full disk above all) as one line: the run stops, what is
        recorded stays, and the same command continues once the cause is fixed."""
        try:
            yield
        except sqlite3.Error as e:
            hint = "; free some space and run the same command again" \
                if "full" in str(e) else ""
            raise RestyleError(f"cannot write the manifest {self.path}: {e}{hint}") from None

    def rows(self) -> dict[str, sqlite3.Row]:
        self.db.row_factory = sqlite3.Row
        with self.errors():
            return {r["key"]: r for r in self.db.execute("SELECT * FROM items")}

    def plan(self, rows: Iterable[tuple], settings: dict[str, tuple[str, str]]) -> None:
        """Upsert (key, kind, size, mtime_ns, output) rows of pending items."""
        with self.errors(), self.db:
            self.db.execute("BEGIN")
            for h, (kind, text) in settings.items():
                self.db.execute("INSERT OR IGNORE INTO params VALUES (?, ?, ?)", (h, kind, text))
            self.db.executemany(
                "INSERT INTO items (key, kind, size, mtime_ns, status, output, updated) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "kind=excluded.kind, status='pending', output=excluded.output, "
                "updated=excluded.updated", rows)

    def record(self, r: dict, item_stat: tuple[int, int], params_hash: str, output: str) -> None:
        with self.errors():
            self.db.execute(
                "UPDATE items SET status=?, hash=COALESCE(?, hash), params_hash=?, size=?, "
                "mtime_ns=?, output=?, seconds=?, error=?, worker=?, attempts=attempts+1, "
                "updated=?, transient=? WHERE key=?",
                (r["status"], r["hash"], params_hash, item_stat[0], item_stat[1], output,
                 r["seconds"], r["error"], r["worker"], time.time(),
                 int(bool(r.get("transient"))), r["key"]))

    def start_run(self, engine: str, items: int) -> int:
        with self.errors():
            cur = self.db.execute("INSERT INTO runs (started, engine, items) VALUES (?, ?, ?)",
                                  (time.time(), engine, items))
        return cur.lastrowid

    def end_run(self, run: int, s: "BatchSummary") -> None:
        with self.errors():
            self.db.execute("UPDATE runs SET finished=?, done=?, skipped=?, failed=?, "
                            "seconds=?, interrupted=? WHERE id=?",
                            (time.time(), s.done, s.skipped, s.failed, s.seconds,
                             int(s.interrupted), run))

    def close(self) -> None:
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()


# ----------------------------------------------------------------------------- the driver

@dataclass
class BatchSummary:
    """What a batch run did."""

    out_dir: Path
    manifest: Path
    total: int  # items found
    pending: int = 0  # items to (re)process in this run
    done: int = 0  # stylised in this run
    skipped: int = 0  # finished earlier (or unchanged)
    failed: int = 0  # failed in this run
    failed_before: int = 0  # failed earlier, not retried (unchanged; see retry_failed)
    seconds: float = 0.0
    interrupted: bool = False
    engine: str = "local"
    workers: int = 1
    errors: list[tuple[str, str]] = field(default_factory=list)  # (input, reason), this run

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        extra = f" ({self.failed_before} failed earlier, unchanged: --retry-failed)" \
            if self.failed_before else ""
        return (f"done {self.done}, skipped {self.skipped}, failed {self.failed}{extra}; "
                f"{self.seconds:.1f} s, {self.rate:.2f} images/s "
                f"({self.engine}, {self.workers} worker{'s' if self.workers != 1 else ''}); "
                f"manifest {self.manifest}")


@dataclass
class _Pending:
    item: Item
    stat: tuple[int, int]
    output: str  # relative to OUT_DIR
    params_hash: str
    expect_hash: str | None
    previous_output: str | None


def _plan(items: list[Item], job: Job, out_dir: Path, manifest: Manifest, retry_failed: bool,
          summary: BatchSummary) -> list[_Pending]:
    rows = manifest.rows()
    taken = {r["output"]: k for k, r in rows.items() if r["output"]}
    hashes = {kind: job.params_hash(kind) for kind in ("image", "video", "other")}
    todo: list[_Pending] = []
    for item in items:
        row = rows.get(item.key)
        try:
            st = item.path.stat()
            stat = (st.st_size, st.st_mtime_ns)
        except OSError:
            stat = (-1, -1)
        suffix = job.suffix(item)
        previous = row["output"] if row is not None else None
        if previous:
            rel = previous.rsplit(".", 1)[0] + suffix
        else:
            rel = output_name(item, suffix)
        owner = taken.get(rel)
        if owner is not None and owner != item.key:
            rel = _with_tag(rel, item.key)
        taken[rel] = item.key
        ph = hashes[item.kind]
        same = row is not None and row["params_hash"] == ph
        same_file = row is not None and (row["size"], row["mtime_ns"]) == stat
        if same and row["status"] == DONE and rel == previous and (out_dir / rel).is_file():
            if same_file:
                summary.skipped += 1
                continue
            expect = row["hash"]  # changed stat: hash it, skip if the content is the same
        else:
            expect = None
        if same and same_file and row["status"] == FAILED and not retry_failed \
                and not row["transient"]:  # a full disk, say: tried again without asking
            summary.failed_before += 1
            continue
        todo.append(_Pending(item, stat, rel, ph, expect, previous))
    settings = {hashes[k]: (k, canonical(job.settings(k))) for k in ("image", "video")}
    now = time.time()
    manifest.plan([(p.item.key, p.item.kind, p.stat[0], p.stat[1], p.output, now)
                   for p in todo], settings)
    return todo


def _ray_init(address: str | None) -> None:
    """Join the Ray cluster at ``address``, or start a local Ray that listens on loopback
    only: its node address is 127.0.0.1, which makes the GCS, the raylet, the agents and
    the workers bind 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` does the same for
    the processes it starts; Ray reads it on import, so it is set first)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RestyleError(f"--engine ray needs Ray: {RAY_HINT}") from None
    if ray.is_initialized():
        return
    local = {"_node_ip_address": "127.0.0.1"} if address is None else {}
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=True, **local)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise RestyleError(f"cannot start or join {where}: {_one_line(e)}") from None
    except Exception as e:  # Ray raises bare Exceptions when its processes do not start
        raise RestyleError(f"cannot start a local Ray: {_one_line(e)} (logs in "
                           "/tmp/ray/session_latest/logs)") from None
    if address is None:
        _reap_with_driver()


#: The watchdog of :func:`_reap_with_driver`: it waits for end-of-file on its standard input
#: (the driver holds the other end, so that comes when the driver ends, however it ends),
#: then kills the listed processes that are still the same processes (same start time).
_REAPER = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
procs = [tuple(map(int, a.split(":"))) for a in sys.argv[1:]]
sys.stdin.buffer.read()
for pid, start in procs:
    try:
        with open(f"/proc/{pid}/stat") as f:
            same = int(f.read().rsplit(")", 1)[1].split()[19]) == start
        if same:
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass
"""
_reaper = None


def _reap_with_driver() -> None:
    """Make the local Ray's processes end with this process, also when it is killed
    (``kill -9``): Ray ends the GCS and the raylet then, but the agents the raylet started
    (DashboardAgent, RuntimeEnvAgent) would live on. A small watchdog process in its own
    session kills them (and anything else of the local Ray that is left) once this process
    is gone. Linux only (it reads /proc); elsewhere nothing is done."""
    global _reaper
    def descendants(root: int) -> list[str]:
        children: dict[int, list[tuple[int, int]]] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                children.setdefault(int(fields[1]), []).append((int(d), int(fields[19])))
        found, todo = [], [root]
        while todo:
            for pid, start in children.get(todo.pop(), []):
                found.append(f"{pid}:{start}")
                todo.append(pid)
        return found

    if _reaper is not None or not os.path.isdir("/proc"):
        return
    try:
        procs = descendants(os.getpid())
        _reaper = subprocess.Popen([sys.executable, "-c", _REAPER, *procs],
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        _reaper = None  # no watchdog: Ray's own clean-up still runs on a normal exit


def _lock(out_dir: Path):
    """Hold ``OUT_DIR/.restyle-batch.lock``: one run at a time writes a folder."""
    import fcntl  # POSIX only: imported where it is needed
    try:
        f = open(out_dir / ".restyle-batch.lock", "a")
    except OSError as e:
        raise RestyleError(f"cannot lock {out_dir}: {e.strerror or e}") from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise RestyleError(f"another restyle batch is writing to {out_dir}; wait for it or "
                           "choose another folder") from None
    return f


def _cleanup_temporaries(out_dir: Path) -> None:
    """Remove the temporary files that a killed worker can leave (the folder's lock is
    held: no other run writes here)."""
    fsio.clean_stale_temps(out_dir, recursive=True, any_process=True)


def run_batch(inputs: Sequence[str | os.PathLike] | str | os.PathLike,
              output: str | os.PathLike, style, *, method: str = "adain",
              style_weights: Sequence[float] | None = None, engine: str = "local",
              address: str | None = None, workers: int = 0, format: str = "png",
              retry_failed: bool = False,
              progress: Callable[[dict, BatchSummary], None] | None = None,
              **params) -> BatchSummary:
    """Stylise every image and video that ``inputs`` name into the folder ``output``.

    See the module docstring for names, the manifest and engines; ``params`` are the
    method's parameters and the video options. ``progress(result, summary)`` is called once
    with ``None`` when the work is planned (``summary.pending`` items to do), then after each
    finished item with its result dict. Returns a :class:`BatchSummary`.
    """
    if engine not in ("local", "ray"):
        raise RestyleError(f"--engine must be local or ray, not {engine!r}")
    if address is not None and engine != "ray":
        raise RestyleError("--address goes with --engine ray")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise RestyleError(f"--workers must be a whole number, 1 or more (0: one per core), "
                           f"not {workers!r}")
    specs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not specs:
        raise RestyleError("give at least one input: a folder, a glob, a file or a list file")
    job = make_job(method, style, style_weights, format, params)
    out_dir = Path(output).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise RestyleError(f"the output {out_dir} is a file; give a folder")
    items = collect(specs, out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RestyleError(f"cannot create the output folder {out_dir}: {e.strerror or e}") \
            from None
    if not os.access(out_dir, os.W_OK):
        raise RestyleError(f"the output folder {out_dir} is not writable")
    out_dir = Path(os.path.abspath(out_dir))
    lock = _lock(out_dir)  # before Ray: a second run into the folder starts nothing
    try:
        if engine == "ray":
            _ray_init(address)
        manifest = Manifest(out_dir)
    except BaseException:
        lock.close()
        raise
    summary = BatchSummary(out_dir, manifest.path, len(items), engine=engine)
    start = time.perf_counter()
    try:
        _cleanup_temporaries(out_dir)  # what a killed run left
        todo = _plan(items, job, out_dir, manifest, retry_failed, summary)
        summary.pending = len(todo)
        if progress is not None:
            progress(None, summary)  # planned: the bar can start with the run
        run = manifest.start_run(engine, len(items))
        if todo:
            _execute(todo, job, out_dir, manifest, engine, workers, summary, progress, start)
            _cleanup_temporaries(out_dir)
        summary.seconds = time.perf_counter() - start
        manifest.end_run(run, summary)
    except KeyboardInterrupt:
        summary.interrupted = True
        summary.seconds = time.perf_counter() - start
        raise
    finally:
        manifest.close()
        lock.close()
    return summary


def _execute(todo: list[_Pending], job: Job, out_dir: Path, manifest: Manifest, engine: str,
             workers: int, summary: BatchSummary, progress, start: float) -> None:
    by_key = {p.item.key: p for p in todo}
    held: list[tuple[dict, _Pending]] = []  # first failures, while they might all be alike
    judging = [False]
    limit = [SAME_ERROR_STOP]

    def record(r: dict, p: _Pending) -> None:
        if r["status"] == "unchanged":
            manifest.record({**r, "status": DONE}, p.stat, p.params_hash, p.output)
            summary.skipped += 1
        else:
            manifest.record(r, p.stat, p.params_hash, p.output)
            if r["status"] == DONE:
                summary.done += 1
                if p.previous_output and p.previous_output != p.output:
                    (out_dir / p.previous_output).unlink(missing_ok=True)  # --format changed
            else:
                summary.failed += 1
                summary.errors.append((text_of(p.item.path), r["error"]))
        summary.seconds = time.perf_counter() - start
        if progress is not None:
            progress(r, summary)

    def handle(r: dict) -> None:
        p = by_key.pop(r["key"], None)
        if p is None:  # a retried batch delivered it twice: the first result stands
            return
        if judging[0] and not (r["status"] == FAILED and r.get("stage") == "input"):
            # the method failing the same way on each of the first items is the settings'
            # fault (a missing decoder, say): stop, and record none of them as failed
            if r["status"] == FAILED and (not held or r["error"] == held[0][0]["error"]):
                held.append((r, p))
                if len(held) == limit[0]:
                    raise RestyleError(f"stopped: the first {len(held)} items all failed "
                                       f"with: {r['error']}")
                return
            judging[0] = False
            for held_r, held_p in held:
                record(held_r, held_p)
        record(r, p)

    work = []
    for p in todo:
        try:
            target = inside(out_dir, p.output)
        except RestyleError as e:
            by_key.pop(p.item.key)
            record({"key": p.item.key, "status": FAILED, "hash": None, "seconds": 0.0,
                    "error": str(e), "worker": None}, p)
            continue
        work.append({"key": p.item.key, "path": os.fsencode(p.item.path), "kind": p.item.kind,
                     "output": str(target), "expect_hash": p.expect_hash or ""})
    judging[0], limit[0] = len(work) > 1, min(SAME_ERROR_STOP, len(work))
    if work:
        if engine == "ray":
            _run_ray(work, job, workers, summary, handle)
        else:
            _run_local(work, job, workers, summary, handle)
    if judging[0]:  # fewer results than it takes to judge
        for held_r, held_p in held:
            record(held_r, held_p)


def _run_local(work: list[dict], job: Job, workers: int, summary: BatchSummary,
               handle: Callable[[dict], None]) -> None:
    cores = os.cpu_count() or 1
    n = max(1, min(workers or cores, len(work)))
    summary.workers = n
    previous_threads = torch.get_num_threads()
    runner = Runner(job, max(1, cores // n))
    queue = iter(work)
    pool = cf.ThreadPoolExecutor(n, thread_name_prefix="restyle-batch")
    running: set = set()
    try:
        while True:
            while len(running) < 2 * n:  # bounded: at most two items per worker in flight
                item = next(queue, None)
                if item is None:
                    break
                running.add(pool.submit(runner, item))
            if not running:
                break
            finished, running = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for f in finished:
                handle(f.result())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        torch.set_num_threads(previous_threads)


def _run_ray(work: list[dict], job: Job, workers: int, summary: BatchSummary,
             handle: Callable[[dict], None]) -> None:
    import ray
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    cpus = int(ray.cluster_resources().get("CPU", 1))
    n = max(1, min(workers or cpus, len(work)))
    summary.workers = n
    # fractional CPUs: an actor per core still leaves room for Ray Data's own tasks (on 2
    # cores two 1-CPU actors starve them and the pipeline stalls)
    ds = ray.data.from_items(work, override_num_blocks=max(1, min(len(work), 4 * n)))
    ds = ds.map_batches(
        RayRunner, fn_constructor_kwargs={"job": dataclasses.asdict(job), "threads": 1},
        batch_size=2, batch_format="numpy", num_cpus=0.75,
        compute=ray.data.ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=2))
    for row in ds.iter_rows():
        handle({k: _plain(v) for k, v in row.items()})
