"""restyle batch: exactly one intact output per good input, bad inputs recorded, reruns
that skip, parameter changes that reprocess what they affect, resume after a hard kill,
output names that stay inside OUT_DIR, one-line CLI errors, and the Ray engine (with an
actor killed mid-run)."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restyle.batch import MANIFEST, run_batch, safe_part
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.nets.stylenet import StyleNet

ROOT = Path(__file__).resolve().parents[1]
GOOD = 24  # good images in the input tree
BAD = ("broken/truncated.png", "broken/text.jpg", "broken/huge.png")


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny random two-style network: milliseconds per image."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    StyleNet(["a", "b"], width=4, blocks=1).save(path)
    return path


def _huge_png(path: Path) -> None:
    """A PNG whose header claims 12000 x 12000 pixels (a decompression bomb)."""
    buf = Path(path)
    Image.new("RGB", (1, 1)).save(buf)
    data = bytearray(buf.read_bytes())
    data[16:24] = (12000).to_bytes(4, "big") * 2  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    buf.write_bytes(bytes(data))


def make_tree(root: Path, good: int = GOOD, size: int = 40) -> list[Path]:
    """``good`` small images in nested folders, three bad files, a hidden file and a stray
    text file; returns the good images."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(good):
        folder = root / ("" if i % 3 == 0 else f"set{i % 3}") / ("deep" if i % 4 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"img {i:02d}.{'png' if i % 2 else 'jpg'}"
        arr = (rng.random((size - i % 5, size, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / name)
        paths.append(folder / name)
    (root / "broken").mkdir()
    full = root / "broken" / "full.png"
    Image.fromarray((rng.random((48, 48, 3)) * 255).astype(np.uint8)).save(full)
    (root / "broken" / "truncated.png").write_bytes(full.read_bytes()[:200])
    full.unlink()
    (root / "broken" / "text.jpg").write_text("not an image\n")
    _huge_png(root / "broken" / "huge.png")
    (root / ".hidden.png").write_bytes(paths[0].read_bytes())
    (root / "notes.txt").write_text("not an input\n")
    return paths


@pytest.fixture
def tree(tmp_path) -> tuple[Path, list[Path]]:
    root = tmp_path / "in"
    return root, make_tree(root)


def batch_args(inputs, out, model, *extra):
    return ["batch", *map(str, inputs if isinstance(inputs, list) else [inputs]), "-o", str(out),
            "--method", "network", "--model", str(model), "--style", "a", "--size", "32", "-q",
            "--workers", "2", *map(str, extra)]


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def rows(out: Path) -> dict[str, dict]:
    db = sqlite3.connect(out / MANIFEST)
    db.row_factory = sqlite3.Row
    found = {r["key"]: dict(r) for r in db.execute("SELECT * FROM items")}
    db.close()
    return found


def outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and p.suffix == ".png")


def leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def expected_output(root: Path, out: Path, src: Path) -> Path:
    rel = src.relative_to(root)
    return out.joinpath(*rel.parent.parts, rel.stem + ".png")


def check_complete(root: Path, out: Path, good: list[Path], size: int = 32) -> None:
    """Every good image has exactly one intact output and a done row; bad ones failed."""
    assert len(outputs(out)) == len(good)
    for src in good:
        dst = expected_output(root, out, src)
        img = Image.open(dst)
        img.load()  # intact
        assert max(img.size) == size
    table = rows(out)
    assert {k for k, r in table.items() if r["status"] == "done"} == {str(p) for p in good}
    failed = {k: r for k, r in table.items() if r["status"] == "failed"}
    assert set(failed) == {str(root / b) for b in BAD}
    assert "damaged or truncated" in failed[str(root / "broken/truncated.png")]["error"]
    assert "not an image file" in failed[str(root / "broken/text.jpg")]["error"]
    assert "too large" in failed[str(root / "broken/huge.png")]["error"]
    assert not leftovers(out)


# ----------------------------------------------------------------------------- local engine

def test_local_exactly_once_rerun_and_param_changes(tree, model, tmp_path, capsys):
    root, good = tree
    out = tmp_path / "out"
    code, stdout, err = run_cli(batch_args(root, out, model), capsys)
    assert code == 1, err  # some inputs failed
    assert f"done {GOOD}, skipped 0, failed 3" in stdout
    assert err.count("failed: ") == 3 and "Traceback" not in err
    check_complete(root, out, good)
    assert not (out / "hidden.png").exists() and not list(out.rglob("notes*"))
    stamps = {p: p.stat().st_mtime_ns for p in outputs(out)}

    # the same command again does nothing: finished items skipped, failures not retried
    code, stdout, _ = run_cli(batch_args(root, out, model), capsys)
    assert code == 0 and f"done 0, skipped {GOOD}, failed 0 (3 failed earlier" in stdout
    assert {p: p.stat().st_mtime_ns for p in outputs(out)} == stamps

    # an input touched but not changed is hashed and skipped; a changed one is redone
    os.utime(good[1], ns=(1, 1))
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(good[2])
    code, stdout, _ = run_cli(batch_args(root, out, model), capsys)
    assert f"done 1, skipped {GOOD - 1}" in stdout
    changed = expected_output(root, out, good[2])
    assert changed.stat().st_mtime_ns != stamps[changed]
    assert sum(p.stat().st_mtime_ns != stamps[p] for p in outputs(out)) == 1

    # video options affect only videos: nothing here to redo
    code, stdout, _ = run_cli(batch_args(root, out, model, "--blend", "0.3"), capsys)
    assert f"done 0, skipped {GOOD}" in stdout

    # a method parameter affects every item: all redone in place; failures retried on request
    code, stdout, _ = run_cli(batch_args(root, out, model, "--size", "24", "--retry-failed"),
                              capsys)
    assert f"done {GOOD}, skipped 0, failed 3" in stdout
    check_complete(root, out, good, size=24)

    # another format: the outputs are renamed, the old files removed
    code, stdout, _ = run_cli(batch_args(root, out, model, "--size", "24", "--format", "jpg"),
                              capsys)
    assert f"done {GOOD}," in stdout
    assert not outputs(out) and len(list(out.rglob("*.jpg"))) == GOOD
    assert len(rows(out)) == GOOD + 3


def test_resume_after_hard_kill(tree, model, tmp_path):
    """A run killed with SIGKILL after 7 items (others in flight) continues where it was."""
    root, good = tree
    out = tmp_path / "out"
    script = (
        "import os, signal, sys\n"
        "from restyle.batch import run_batch\n"
        "def hook(r, s):\n"
        "    if s.done == 7:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"run_batch([{str(root)!r}], {str(out)!r}, ['a'], method='network', "
        f"model={str(model)!r}, size=32, workers=2, progress=hook)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    before = rows(out)
    done_before = {k for k, r in before.items() if r["status"] == "done"}
    assert len(done_before) == 7
    assert all(r["status"] in ("pending", "done", "failed") for r in before.values())

    seen = []
    summary = run_batch([root], out, ["a"], method="network", model=str(model), size=32,
                        workers=2, progress=lambda r, s: r and seen.append(r["key"]))
    assert summary.done == GOOD - 7 and summary.skipped == 7
    assert not set(seen) & done_before  # nothing finished was redone
    check_complete(root, out, good)


def test_interrupt_keeps_finished_items(tree, model, tmp_path):
    root, good = tree
    out = tmp_path / "out"

    def stop(r, s):
        if s.done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(root, out, "a", method="network", model=str(model), size=32, workers=1,
                  progress=stop)
    assert sum(r["status"] == "done" for r in rows(out).values()) == 5
    summary = run_batch(root, out, "a", method="network", model=str(model), size=32)
    assert (summary.done, summary.skipped) == (GOOD - 5, 5)
    assert summary.failed + summary.failed_before == 3  # recorded before or after the stop
    check_complete(root, out, good)


def test_output_names_stay_inside(tmp_path, model, capsys):
    """Entries of a list file outside its folder, odd names, a name collision, a symbolic
    link inside OUT_DIR that points elsewhere: every output lands inside OUT_DIR under a
    sanitised name, and nothing is written through the link."""
    base = tmp_path / "data" / "lists"
    base.mkdir(parents=True)
    outside = tmp_path / "data" / "elsewhere"
    outside.mkdir()
    weird = tmp_path / "weird"
    weird.mkdir()
    px = np.full((20, 20, 3), 128, np.uint8)
    names = ["..evil.png", " spaced out .png", "über:café?.png", "dup.png", "dup.jpg",
             ".hidden.png"]
    for n in names:
        Image.fromarray(px).save(outside / n, format="PNG")
    Image.fromarray(px).save(weird / "a\nb\\c.png", format="PNG")
    Image.fromarray(px).save(base / "local.png")
    (base / "trap").mkdir()
    Image.fromarray(px).save(base / "trap" / "x.png")
    listing = base / "inputs.txt"
    listing.write_text("# comment\n\n" + "\n".join(
        ["../elsewhere/" + n for n in names] +
        ["local.png", "trap/x.png", str(tmp_path / "missing.png")]) + "\n")
    out = tmp_path / "out"
    (out / "lists").mkdir(parents=True)
    (out / "lists" / "trap").symlink_to(outside, target_is_directory=True)
    before = sorted(outside.iterdir())
    code, _, err = run_cli(batch_args([listing, weird], out, model), capsys)
    assert code == 1 and "Traceback" not in err
    table = rows(out)
    written = [out / r["output"] for r in table.values() if r["status"] == "done"]
    assert len(written) == len(names) + 2
    assert all(out.resolve() in p.resolve().parents for p in written)
    for p in written:
        assert all(part == safe_part(part) for part in p.relative_to(out).parts)
    assert {p.relative_to(out).as_posix() for p in written} >= {
        "elsewhere/evil.png", "elsewhere/spaced out.png", "elsewhere/über_café_.png",
        "elsewhere/dup.png", "elsewhere/hidden.png", "lists/local.png", "a_b_c.png"}
    dups = [p.name for p in written if p.name.startswith("dup")]
    assert len(dups) == 2 and any("~" in d for d in dups)  # the later one gets a tag
    failed = {k: r["error"] for k, r in table.items() if r["status"] == "failed"}
    assert "outside" in failed[str(base / "trap" / "x.png")]
    assert "not found" in failed[str(tmp_path / "missing.png")]
    assert sorted(outside.iterdir()) == before  # nothing written through the link


@pytest.mark.parametrize("case,pattern", [
    ("missing_input", "input not found"),
    ("empty_glob", "no files match"),
    ("output_is_file", "is a file; give a folder"),
    ("texture_method", "is a texture method"),
    ("bad_param", "--size must be at least 16"),
    ("missing_style", "style image not found"),
    ("unknown_style", "has no style 'zebra'"),
    ("address_local", "--address goes with --engine ray"),
    ("bad_workers", "--workers must be a whole number, 1 or more"),
])
def test_bad_cli_input_one_line_exit_2(case, pattern, tree, model, tmp_path, capsys):
    root, _ = tree
    out = tmp_path / "out"
    args = batch_args(root, out, model)
    if case == "missing_input":
        args[1] = str(tmp_path / "nope")
    elif case == "empty_glob":
        args[1] = str(root / "*.tiff")
    elif case == "output_is_file":
        out.write_text("x")
    elif case == "texture_method":
        args = ["batch", str(root), "-o", str(out), "--method", "texture", "--style", "x.png"]
    elif case == "bad_param":
        args += ["--size", "4"]
    elif case == "missing_style":
        args = ["batch", str(root), "-o", str(out), "--method", "adain", "--style",
                str(tmp_path / "nostyle.png")]
    elif case == "unknown_style":
        args[args.index("a")] = "zebra"
    elif case == "address_local":
        args += ["--address", "127.0.0.1:1"]
    elif case == "bad_workers":
        args += ["--workers", "-1"]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert pattern in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_same_error_everywhere_stops_the_run(tree, tmp_path, capsys):
    """A setting every item fails on (here a missing decoder) stops the run with one line
    and records nothing as failed, so the fixed command does the work."""
    root, _ = tree
    style = tmp_path / "style.png"
    Image.fromarray(np.full((24, 24, 3), 200, np.uint8)).save(style)
    out = tmp_path / "out"
    code, _, err = run_cli(["batch", root, "-o", out, "--method", "adain", "--style", style,
                            "--decoder", tmp_path / "none.safetensors", "--size", "32", "-q",
                            "--workers", "1"], capsys)
    assert code == 2 and "stopped: the first 4 items all failed with: no relu4_1 decoder" in err
    assert len(err.strip().splitlines()) == 1
    failed = {k for k, r in rows(out).items() if r["status"] == "failed"}
    assert failed == {str(root / b) for b in BAD}  # bad inputs are still recorded


def test_ray_missing_is_one_line(tree, model, tmp_path, capsys, monkeypatch):
    root, _ = tree
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code, _, err = run_cli(batch_args(root, tmp_path / "out", model, "--engine", "ray"), capsys)
    assert code == 2 and "pip install 'restyle[ray]'" in err and len(err.splitlines()) == 1


def test_videos_are_items(tmp_path, model, capsys):
    av = pytest.importorskip("av")
    pytest.importorskip("cv2")
    from .test_video import moving_frames, write_clip
    root = tmp_path / "in"
    (root / "clips").mkdir(parents=True)
    write_clip(root / "clips" / "pan.mp4", moving_frames(3), audio=False)
    Image.fromarray(moving_frames(1)[0]).save(root / "still.png")
    out = tmp_path / "out"
    code, stdout, err = run_cli(batch_args(root, out, model), capsys)
    assert code == 0 and "done 2," in stdout, err
    with av.open(str(out / "clips" / "pan.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3
    assert not list(out.rglob("*.restyle-work"))
    # a video option changes only the video's output
    code, stdout, _ = run_cli(batch_args(root, out, model, "--blend", "0.2"), capsys)
    assert "done 1, skipped 1" in stdout


def test_api_batch(tree, model, tmp_path):
    import restyle.api
    root, good = tree
    calls = []
    summary = restyle.api.batch(root, tmp_path / "out", "a", method="network",
                                model=str(model), size=32,
                                progress=lambda r, s: calls.append(r and r["status"]))
    assert (summary.done, summary.failed) == (GOOD, 3)
    assert calls[0] is None and sorted(calls[1:]) == ["done"] * GOOD + ["failed"] * 3
    with pytest.raises(RestyleError, match="unknown parameter"):
        restyle.api.batch(root, tmp_path / "out", "a", method="network", model=str(model),
                          sizes=32)


def test_full_disk_items_retry_by_default_bad_inputs_do_not(tree, model, tmp_path, capsys,
                                                            monkeypatch):
    """Outputs that could not be written for lack of space fail this run and are retried by
    the next one without --retry-failed; bad inputs stay failed."""
    import errno

    from restyle import batch, fsio
    root, good = tree
    out = tmp_path / "out"
    real_save = batch.imaging.save_image
    full = {expected_output(root, out, good[i]) for i in (1, 5, 9)}

    def save(img, path, overwrite=True):
        if Path(path) in full:
            raise fsio.write_error(path, OSError(errno.ENOSPC, "No space left on device"))
        return real_save(img, path, overwrite)

    monkeypatch.setattr(batch.imaging, "save_image", save)
    code, stdout, err = run_cli(batch_args(root, out, model), capsys)
    assert code == 1 and f"done {GOOD - 3}, skipped 0, failed 6" in stdout, stdout + err
    assert err.count("No space left on device") == 3 and "Traceback" not in err
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(batch.imaging, "save_image", real_save)  # space freed
    code, stdout, err = run_cli(batch_args(root, out, model), capsys)
    assert code == 0 and f"done 3, skipped {GOOD - 3}, failed 0 (3 failed earlier" in stdout
    check_complete(root, out, good)


class _FullDisk:
    """A SQLite connection whose item updates fail as on a full disk."""

    def __init__(self, db):
        self._db = db

    def execute(self, sql, *args):
        if sql.startswith("UPDATE items"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)

    def __enter__(self):
        return self._db.__enter__()

    def __exit__(self, *exc):
        return self._db.__exit__(*exc)


def test_manifest_on_a_full_disk_is_one_line(tree, model, tmp_path, capsys, monkeypatch):
    from restyle import batch
    root, _ = tree
    real_init = batch.Manifest.__init__

    def init(self, out_dir):
        real_init(self, out_dir)
        self.db = _FullDisk(self.db)

    monkeypatch.setattr(batch.Manifest, "__init__", init)
    code, _, err = run_cli(batch_args(root, tmp_path / "out", model), capsys)
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "database or disk is full" in lines[0]
    assert "run the same command again" in lines[0]


def test_folder_lock_is_checked_before_ray_starts(tree, model, tmp_path, monkeypatch):
    import fcntl

    from restyle import batch
    root, _ = tree
    out = tmp_path / "out"
    out.mkdir()
    held = open(out / ".restyle-batch.lock", "w")
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    started = []
    monkeypatch.setattr(batch, "_ray_init", lambda address: started.append(address))
    try:
        with pytest.raises(RestyleError, match="another restyle batch"):
            run_batch(root, out, "a", method="network", model=str(model), engine="ray")
    finally:
        held.close()
    assert started == []


# ----------------------------------------------------------------------------- Ray engine

def descendants(pid: int) -> set[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(d))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        found.add(p)
        todo += children.get(p, [])
    return found


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    yield ray
    ray.shutdown()


def test_ray_exactly_once_with_an_actor_killed(ray_session, model, tmp_path):
    """A local Ray (loopback only) over the images; the first worker to report is killed
    with SIGKILL: it is restarted, its batch retried, and every image still has exactly
    one output and one done row."""
    root = tmp_path / "in"
    good = make_tree(root)
    out = tmp_path / "out"
    killed = []

    def kill_first(r, s):
        if r is not None and not killed and r["worker"]:
            pid = int(r["worker"].rsplit(":", 1)[1])
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    summary = run_batch(root, out, "a", method="network", model=str(model), size=32,
                        engine="ray", workers=2, progress=kill_first)
    assert killed and (summary.done, summary.failed) == (GOOD, 3)
    check_complete(root, out, good)
    workers = {r["worker"] for r in rows(out).values() if r["worker"]}
    assert len(workers) >= 2
    # loopback only: every socket that this Ray (this process and the processes it
    # started) listens on is bound to 127.0.0.1
    mine = descendants(os.getpid())
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ours = [ln.split()[3] for ln in listening.splitlines()
            if any(int(p) in mine for p in re.findall(r"pid=(\d+)", ln))]
    assert len(ours) >= 3 and all(a.rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]")
                                  for a in ours), ours
    # and again: nothing to do
    again = run_batch(root, out, "a", method="network", model=str(model), size=32,
                      engine="ray", workers=2)
    assert (again.done, again.skipped, again.failed_before) == (0, GOOD, 3)


def test_local_ray_processes_end_with_a_killed_driver(tmp_path):
    """kill -9 of the driver: Ray's agents (which Ray itself leaves running) are ended by
    the watchdog, so nothing of the local Ray survives."""
    pytest.importorskip("ray")
    script = tmp_path / "driver.py"
    script.write_text(f"import sys, time\nsys.path.insert(0, {str(ROOT)!r})\n"
                      "from restyle.batch import _ray_init\n_ray_init(None)\n"
                      "print('ready', flush=True)\ntime.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline().strip() == "ready"
        ray_procs = descendants(proc.pid) - {proc.pid}
        names = {Path(f"/proc/{p}/cmdline").read_bytes()[:40] for p in ray_procs
                 if Path(f"/proc/{p}/cmdline").exists()}
        assert any(b"DashboardAgent" in n or b"RuntimeEnvAgent" in n for n in names), names
    finally:
        proc.kill()
        proc.wait(30)
        proc.stdout.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = {p for p in ray_procs if Path(f"/proc/{p}").exists()
                 and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()}
        if not alive:
            break
        time.sleep(0.5)
    assert not alive, [Path(f"/proc/{p}/cmdline").read_bytes()[:60] for p in alive]


def test_batch_onto_its_own_input_folder_touches_nothing(tree, model, capsys):
    root, good = tree
    before = {p: p.read_bytes() for p in good}
    code, _, err = run_cli(batch_args(root, root, model), capsys)
    assert code == 2 and "no images or videos found" in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in good} == before
