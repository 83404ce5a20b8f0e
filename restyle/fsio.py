"""Files written whole or not at all: the one way restyle replaces a file.

:func:`atomic_write` writes into a temporary file next to the target, flushes it to the
disk (``fsync``), renames it over the target and flushes the folder, so after a crash or
``kill -9`` a reader finds the old file or the new one, never a torn one, and a power
cut after the rename does not take the new file back. A failed write removes its
temporary file; one that a killed process left behind (its name says whose it is, see
:func:`temp_name`) is removed by the next :func:`check_writable` of that folder.

:func:`check_writable` is the check before any work: it creates (and removes) a
temporary file of the real naming in the target's folder, so a name too long for the
file system, an unwritable or special folder, or a full disk is a one-line
:class:`WriteError` before a long run instead of a traceback after it.
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import os
import re
import secrets
import time
from pathlib import Path
from typing import IO, Iterator

from .errors import RestyleError

#: Temporary files: ``.NAME.PID-RANDOM.tmp`` (plus the target's suffix where a writer
#: needs it, e.g. ``.tmp.mp4``); NAME is cut so that the whole fits in a file name.
_TEMP_RE = re.compile(r"^\..*\.(\d+)-[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]{1,8})?$")
#: A temporary file of a process that is still alive is left alone unless it is older.
STALE_SECONDS = 24 * 3600
#: errno values that say "try again later" rather than "this input is bad".
TRANSIENT_ERRNOS = frozenset({errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EIO,
                              errno_codes.EAGAIN, errno_codes.ENOMEM, errno_codes.EROFS,
                              errno_codes.ESTALE, errno_codes.EBUSY})


class WriteError(RestyleError):
    """A file could not be written; ``errno`` says why (ENOSPC: the disk is full)."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno

    @property
    def transient(self) -> bool:
        return self.errno in TRANSIENT_ERRNOS


def write_error(path: str | os.PathLike, e: OSError) -> WriteError:
    """The one-line error for an OSError while writing ``path``."""
    return WriteError(f"cannot write {path}: {e.strerror or e}", e.errno)


def is_transient(e: BaseException) -> bool:
    """True for failures that may go away on their own (a full disk, an I/O error, no
    memory): worth retrying on the next run, unlike a bad input."""
    if isinstance(e, MemoryError):
        return True
    if isinstance(e, WriteError):
        return e.transient
    if isinstance(e, OSError):
        return e.errno in TRANSIENT_ERRNOS
    return False


def name_max(folder: str | os.PathLike) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def temp_name(path: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh temporary name for ``path`` in its folder: hidden, tagged with this process
    id (so a later run knows whether its writer is gone) and short enough for any target
    whose own name fits."""
    p = Path(path)
    tail = f".{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}"
    room = max(1, min(255, name_max(p.parent) if p.parent.exists() else 255) - len(tail) - 1)
    head = os.fsencode(p.name)[:room].decode("utf-8", "ignore") or "f"
    return p.with_name(f".{head}{tail}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is still atomic
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str | None = "wb", *, suffix: str = "",
                 encoding: str | None = None) -> Iterator[IO | Path]:
    """Replace ``path`` atomically with what the block writes.

    With ``mode`` (``"wb"``, ``"w"``) the block gets the open temporary file; with
    ``mode=None`` it gets the temporary file's path, for writers that open files
    themselves (``suffix`` then gives it the extension they need, e.g. ``".mp4"``). When
    the block ends the file is synced to disk, renamed over ``path`` and the folder synced;
    when it raises, the temporary file is removed and the exception goes on unchanged.
    OSErrors of these steps (creating, flushing, syncing, renaming: a full disk shows
    here) become :class:`WriteError`; the block's own exceptions are the caller's."""
    p = Path(path)
    tmp = temp_name(p, suffix)
    f = None
    try:
        if mode is not None:
            try:
                f = open(tmp, mode.replace("w", "x"), encoding=encoding)
            except OSError as e:
                raise write_error(p, e) from None
        yield f if f is not None else tmp
        try:
            if f is not None:
                f.flush()
                os.fsync(f.fileno())
                f.close()
            else:  # the writer closed it: sync what it wrote
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(tmp, p)
        except OSError as e:
            raise write_error(p, e) from None
    finally:
        if f is not None and not f.closed:
            with contextlib.suppress(OSError):
                f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # only after a failure: a rename leaves nothing here
    _fsync_dir(p.parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` into ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def clean_stale_temps(folder: str | os.PathLike, recursive: bool = False,
                      any_process: bool = False) -> int:
    """Remove temporary files of :func:`temp_name`'s naming in ``folder`` whose process is
    gone (or that are older than :data:`STALE_SECONDS`; with ``any_process``, all of
    them: for a caller that holds the folder's lock); the number removed."""
    removed = 0
    now = time.time()
    walk = os.walk(folder) if recursive else [(os.fspath(folder), [], _files(folder))]
    for root, _dirs, files in walk:
        for name in files:
            m = _TEMP_RE.match(name)
            if not m:
                continue
            full = os.path.join(root, name)
            try:
                if (not any_process and _alive(int(m.group(1)))
                        and now - os.stat(full).st_mtime < STALE_SECONDS):
                    continue
                os.unlink(full)
                removed += 1
            except OSError:
                pass
    return removed


def _files(folder) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def check_name(path: str | os.PathLike) -> Path:
    """``path`` as a Path; :class:`WriteError` when its name is longer than its file
    system allows (checked first: even asking whether such a path exists fails)."""
    p = Path(path)
    parent = p.parent
    while not _exists(parent) and parent != parent.parent:
        parent = parent.parent
    limit = name_max(parent)
    for part in p.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise WriteError(f"cannot write {p}: a file name is too long ({size} bytes; this "
                             f"file system allows {limit})", errno_codes.ENAMETOOLONG)
    return p


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except OSError:
        return False


def check_writable(path: str | os.PathLike, clean: bool = True) -> Path:
    """Check now that ``path`` can be written the way :func:`atomic_write` will write it:
    its name fits the file system, and a temporary file can be created (and removed) in
    its folder. Stale temporary files of earlier runs there are removed first (``clean``).
    Raises :class:`WriteError` with one line."""
    p = check_name(path)
    if clean:
        clean_stale_temps(p.parent)
    tmp = temp_name(p)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise write_error(p, e) from None
    return p
