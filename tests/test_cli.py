"""The command line: success paths write files; bad input gives one line and exit 2."""

import subprocess
import sys

import pytest
from PIL import Image

from restyle.cli import main

from .conftest import stripes

FAST = ["--size", "48", "--iterations", "3", "--min-size", "0", "-q"]


@pytest.fixture
def style_file(tmp_path):
    path = tmp_path / "style.png"
    Image.fromarray(stripes(48)).save(path)
    return path


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_transfer_writes_output(photo, style_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    code, stdout, err = run_cli(["transfer", photo, style_file, "-o", out, *FAST], capsys)
    assert code == 0, err
    assert "wrote" in stdout and str(out) in stdout
    assert Image.open(out).size == (48, 48)


def test_transfer_snapshots_and_blend(photo, style_file, tmp_path, capsys):
    out = tmp_path / "blend.jpg"
    code, _, err = run_cli(["transfer", photo, style_file, style_file, "--style-weights", "0.3,0.7",
                            "-o", out, "--snapshot-every", "2", *FAST], capsys)
    assert code == 0, err
    assert out.is_file()
    # the default method (anytime) shows its one-pass start first, as step 0
    assert [p.name for p in sorted((tmp_path / "blend_snapshots").iterdir())] == [
        "step-00000.png", "step-00002.png"]


@pytest.mark.parametrize("case,pattern", [
    ("missing", "content image not found"),
    ("not_image", "not an image file"),
    ("truncated", "damaged or truncated"),
    ("no_folder", "does not exist"),
    ("exists", "already exists; pass --overwrite"),
    ("bad_ext", "unknown image extension"),
    ("bad_param", "--strength must be at most 1"),
    ("bad_method", "unknown method"),
    ("bad_layers", "unknown vgg16 layer"),
    ("bad_weights", "1 style weights for 2"),
])
def test_bad_input_is_one_line_exit_2(case, pattern, photo, style_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    content, styles, extra = photo, [style_file], []
    if case == "missing":
        content = tmp_path / "missing.jpg"
    elif case == "not_image":
        content = tmp_path / "text.png"
        content.write_text("plain text")
    elif case == "truncated":
        content = tmp_path / "half.png"
        data = photo.read_bytes()
        content.write_bytes(data[: len(data) // 3])
    elif case == "no_folder":
        out = tmp_path / "missing_dir" / "out.png"
    elif case == "exists":
        out.write_bytes(b"keep me")
    elif case == "bad_ext":
        out = tmp_path / "out.docx"
    elif case == "bad_param":
        extra = ["--strength", "3"]
    elif case == "bad_method":
        extra = ["--method", "magic"]
    elif case == "bad_layers":
        extra = ["--style-layers", "relu9_1"]
    elif case == "bad_weights":
        styles, extra = [style_file, style_file], ["--style-weights", "1"]
    code, stdout, err = run_cli(["transfer", content, *styles, "-o", out, *FAST, *extra], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restyle: error:"), err
    assert pattern in lines[0]
    assert "Traceback" not in err
    if case == "exists":
        assert out.read_bytes() == b"keep me"
    elif out.parent.exists():
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if p.suffix == ".tmp"]


def test_overwrite_flag_replaces(photo, style_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    code, _, err = run_cli(["transfer", photo, style_file, "-o", out, "--overwrite", *FAST], capsys)
    assert code == 0, err
    assert Image.open(out).size == (48, 48)


def test_texture_command(style_file, tmp_path, capsys):
    out = tmp_path / "tex.png"
    code, _, err = run_cli(["texture", style_file, "-o", out, "--size", "40x24", "--iterations",
                            "3", "--min-size", "0", "--tileable", "-q"], capsys)
    assert code == 0, err
    assert Image.open(out).size == (40, 24)


def test_methods_and_help(capsys):
    code, out, _ = run_cli(["methods"], capsys)
    assert code == 0
    assert "gatys" in out and "texture" in out and "--preserve-color" in out
    code, out, _ = run_cli([], capsys)
    assert code == 0 and "transfer" in out
    code, _, err = run_cli(["paint"], capsys)
    assert code == 2 and "unknown command" in err


def test_argparse_errors_exit_2_with_one_line(capsys):
    code, _, err = run_cli(["transfer"], capsys)
    assert code == 2
    assert err.strip() == ("restyle: error: restyle transfer: the following arguments are "
                           "required: content, style, -o/--output (see restyle transfer --help)")


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "restyle", "transfer", str(tmp_path / "a.jpg"),
                           str(tmp_path / "b.jpg"), "-o", str(tmp_path / "c.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"restyle: error: content image not found: {tmp_path / 'a.jpg'}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_large_blocks_stay_in_the_heap_unless_turned_off():
    import os
    probe = ("import resource, torch\n"
             "from restyle.runtime import keep_freed_memory\n"
             "on = keep_freed_memory()\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
             "for _ in range(10): torch.empty(60 * 2**20, dtype=torch.uint8).fill_(1)\n"
             "print(on, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)")
    runs = {}
    for setting in ("keep", "system"):
        env = {**os.environ, "RESTYLE_MALLOC": setting}
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        runs[setting] = (out[0], int(out[1]))
    assert runs["keep"][0] == "True" and runs["system"][0] == "False"
    # ten 60 MB blocks (15360 pages each): the system allocator maps and faults in every
    # one afresh, the kept heap faults in the first only
    pages = 60 * 2**20 // 4096
    assert runs["system"][1] > 9 * pages and runs["keep"][1] < 2 * pages, runs


def test_allocator_setting_follows_the_machine_and_rejects_bad_values():
    from restyle.runtime import AUTO_MIN_RAM, wanted
    assert wanted("", AUTO_MIN_RAM) and wanted("auto", 64 * 2**30)
    assert not wanted("", 8 * 2**30) and not wanted("auto", None)  # laptops keep lean memory
    assert wanted("keep", 8 * 2**30) and not wanted("system", 64 * 2**30)
    import os
    env = {**os.environ, "RESTYLE_MALLOC": "fast"}
    proc = subprocess.run([sys.executable, "-m", "restyle", "methods"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("restyle: error: RESTYLE_MALLOC must be auto, keep or "
                                   "system, not 'fast'")


# ----------------------------------------------------------------------------- audit (#23)

def _one_line_error(code, err, pattern):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restyle: error:"), err
    assert pattern in lines[0], lines[0]


@pytest.mark.parametrize("command", ["transfer", "texture", "dream", "doodle", "analogy",
                                     "style"])
def test_overwrite_never_replaces_an_input(command, photo, style_file, tmp_path, capsys):
    """-o INPUT --overwrite is refused before any work, for every command and for each
    kind of input (content, style, exemplar, maps)."""
    before = photo.read_bytes(), style_file.read_bytes()
    if command == "transfer":
        args = ["transfer", photo, style_file, "-o", photo, *FAST]
    elif command == "style":  # the output is the style image
        args = ["transfer", photo, style_file, "-o", style_file, *FAST]
    elif command == "texture":
        args = ["texture", style_file, "-o", style_file, "--size", "32x32", "-q"]
    elif command == "dream":
        args = ["dream", photo, "-o", photo, "--size", "32", "-q"]
    elif command == "doodle":
        args = ["doodle", style_file, "--style-map", style_file, "--target-map", photo,
                "-o", photo, "--size", "32", "-q"]
    else:
        args = ["analogy", photo, style_file, "-o", tmp_path / "a.png", "--also-b", style_file,
                "--size", "48", "-q"]
    code, _, err = run_cli([*args, "--overwrite"], capsys)
    _one_line_error(code, err, "would replace the input")
    assert (photo.read_bytes(), style_file.read_bytes()) == before


def test_folder_onto_itself_is_refused(photo, style_file, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(photo.read_bytes())
    before = (folder / "a.png").read_bytes()
    code, _, err = run_cli(["transfer", folder, style_file, "-o", folder, "--overwrite", *FAST],
                           capsys)
    _one_line_error(code, err, "would replace the input")
    assert (folder / "a.png").read_bytes() == before


def test_output_a_link_to_the_input_is_refused(photo, style_file, tmp_path, capsys):
    link = tmp_path / "link.png"
    link.symlink_to(photo)
    code, _, err = run_cli(["transfer", photo, style_file, "-o", link, "--overwrite", *FAST],
                           capsys)
    _one_line_error(code, err, "would replace the input")


@pytest.mark.parametrize("case", ["long_name", "special", "unwritable_temp"])
def test_output_that_cannot_be_written_fails_before_the_work(case, photo, style_file, tmp_path,
                                                             capsys, monkeypatch):
    """The output's temporary file is tried before the method runs: a name the file system
    refuses, a folder nothing can be created in (/proc), a failing create: one line, exit 2,
    and the method never ran."""
    from restyle import fsio
    from restyle.methods.gatys import Gatys
    ran = []
    monkeypatch.setattr(Gatys, "run", lambda *a, **k: ran.append(1))
    if case == "long_name":
        out = tmp_path / ("x" * 260 + ".png")
        pattern = "too long"
    elif case == "special":
        out = "/proc/restyle-out.png"
        pattern = "cannot write /proc/restyle-out.png"
    else:
        out = tmp_path / "out.png"
        real_open = fsio.os.open

        def no_space(path, *a, **k):
            if ".tmp" in str(path):
                raise OSError(28, "No space left on device")
            return real_open(path, *a, **k)
        monkeypatch.setattr(fsio.os, "open", no_space)
        pattern = "No space left on device"
    code, _, err = run_cli(["transfer", photo, style_file, "-o", out, *FAST], capsys)
    _one_line_error(code, err, pattern)
    assert not ran


def test_output_name_of_245_characters_works(photo, style_file, tmp_path, capsys):
    """A long name that fits the file system is written (its temporary name is shortened)."""
    out = tmp_path / ("y" * 241 + ".png")
    code, _, err = run_cli(["transfer", photo, style_file, "-o", out, *FAST], capsys)
    assert code == 0, err
    assert Image.open(out).size == (48, 48)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_stale_temporary_of_a_killed_save_is_removed(photo, style_file, tmp_path, capsys):
    """kill -9 during a save leaves a hidden temporary file; the next run writing into that
    folder removes it (its process is gone), and leaves other hidden files alone."""
    from restyle import fsio
    out = tmp_path / "out.png"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".out.png.{dead}-0123abcd.tmp"
    stale.write_bytes(b"half a png")
    mine = fsio.temp_name(out)  # this (live) process's: left alone
    mine.write_bytes(b"in progress")
    other = tmp_path / ".hidden.tmp"  # not restyle's naming
    other.write_bytes(b"someone else's")
    code, _, err = run_cli(["transfer", photo, style_file, "-o", out, *FAST], capsys)
    assert code == 0, err
    assert not stale.exists() and mine.exists() and other.exists()


def test_snapshot_folder_name_too_long_fails_before_the_work(photo, style_file, tmp_path,
                                                             capsys):
    out = tmp_path / ("z" * 248 + ".png")  # fits; its NAME_snapshots folder would not
    code, _, err = run_cli(["transfer", photo, style_file, "-o", out, "--snapshot-every", "1",
                            *FAST], capsys)
    _one_line_error(code, err, "too long")
    assert not out.exists()
