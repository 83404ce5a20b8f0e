"""restyle compare: a sheet of methods x (content, style) pairs with metrics."""

import json

import pytest
from PIL import Image

from restyle.cli import main

from .conftest import stripes


@pytest.fixture
def pair(tmp_path, photo):
    style = tmp_path / "stripes.png"
    Image.fromarray(stripes(64)).save(style)
    return photo, style


def test_compare_writes_sheet_html_and_json(pair, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESTYLE_MODELS", str(tmp_path / "no-models"))  # network cannot run
    content, style = pair
    out = tmp_path / "sheet"
    code = main(["compare", "-o", str(out), "--methods", "gatys,network", "--contents",
                 str(content), "--styles", str(style), "--size", "48",
                 "--set", "gatys.iterations=3", "--set", "gatys.min_size=0"])
    assert code == 0
    assert "1 images, 1 cells could not run" in capsys.readouterr().out
    sheet = Image.open(out / "sheet.png")
    assert sheet.width > 3 * 48 and sheet.height > 48
    result = json.loads((out / "results.json").read_text())
    gatys, network = result["rows"][0]["results"]
    assert gatys["method"] == "gatys" and gatys["settings"]["iterations"] == 3
    assert set(result["directions"]) <= set(gatys["metrics"])
    assert gatys["metrics"]["gram_distance"] > 0 and gatys["seconds"] > 0
    assert "no style network is installed" in network["error"]
    page = (out / "sheet.html").read_text()
    assert "row0-gatys.png" in page and "gram" in page and "no style network" in page
    assert (out / "row0-gatys.png").exists() and result["machine"]["torch"]
    # never over an existing sheet without asking
    assert main(["compare", "-o", str(out), "--methods", "gatys", "--contents", str(content),
                 "--styles", str(style), "--size", "48"]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--set", "gatys.nope=1"], "no parameter 'nope'"),
    (["--set", "gatys.iterations=abc"], "not a valid int"),
    (["--set", "adain.strength=1"], "not among the compared methods"),
    (["--methods", "texture"], "not a transfer method"),
    (["--methods", "nosuch"], "unknown method"),
])
def test_compare_rejects_bad_arguments(pair, tmp_path, capsys, args, message):
    content, style = pair
    base = ["compare", "-o", str(tmp_path / "s"), "--methods", "gatys", "--contents",
            str(content), "--styles", str(style), "--size", "48"]
    assert main(base + args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()
