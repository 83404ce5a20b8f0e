"""Evaluation metrics move the right way; the HED edge map finds edges; the CLI paths."""

import json

import numpy as np
import pytest
import torch

from restyle import imaging
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.evaluate import metrics as M
from restyle.evaluate.hed import get_hed

S = 64


def load(path, size=S):
    return imaging.to_tensor(imaging.resize(imaging.load_image(path), (size, size)))


@pytest.fixture(scope="module")
def content():
    from skimage import data
    return load(data.astronaut())


@pytest.fixture(scope="module")
def style():
    from .conftest import ROOT
    return load(ROOT / "restyle" / "assets" / "demo_style.jpg")


def blur(t, factor):
    """Lose detail by going down to 1/factor of the size and back up."""
    return imaging.resize_tensor(imaging.resize_tensor(t, (S // factor, S // factor)), (S, S))


def shuffle(t, seed=0):
    """The same pixels in random places: same palette, no structure."""
    perm = torch.randperm(S * S, generator=torch.Generator().manual_seed(seed))
    return t.reshape(1, 3, -1)[..., perm].reshape(t.shape)


def test_identical_images_are_perfect(content):
    m = M.evaluate(content, content, content)
    assert m["content_distance"] == 0 and m["gram_distance"] == 0 and m["palette_distance"] == 0
    assert m["ssim_luminance"] == pytest.approx(1.0)
    assert m["edge_similarity"] == pytest.approx(1.0)
    assert m["gaussian_wasserstein"] == pytest.approx(0.0, abs=1e-5)
    assert set(M.DIRECTIONS) <= set(m) and "gram_distance/relu3_1" in m


def test_content_metrics_worsen_with_degradation(content):
    """identical < mild blur < strong blur < shuffled pixels, for every content metric."""
    outputs = [content, blur(content, 2), blur(content, 4), shuffle(content)]
    dist = [M.content_distance(o, content) for o in outputs]
    ssim = [M.ssim_luminance(o, content) for o in outputs]
    edge = [M.edge_similarity(o, content) for o in outputs]
    assert dist == sorted(dist) and len(set(dist)) == 4, dist
    assert ssim == sorted(ssim, reverse=True) and len(set(ssim)) == 4, ssim
    assert edge == sorted(edge, reverse=True) and len(set(edge)) == 4, edge
    assert ssim[-1] < 0.1 and edge[-1] < 0.2  # nothing of the structure is left


def test_style_metrics_improve_towards_the_style(content, style):
    """Blending the content ever more towards the style lowers every style distance."""
    outputs = [content, 0.5 * content + 0.5 * style, 0.1 * content + 0.9 * style, style]
    for fn in (M.gram_distance, M.gaussian_wasserstein):
        means = [fn(o, style)["mean"] for o in outputs]
        assert means == sorted(means, reverse=True) and means[0] > 5 * means[2], (fn, means)
        assert means[-1] == pytest.approx(0.0, abs=1e-5)
    pal = [M.palette_distance(o, style) for o in outputs]
    assert pal == sorted(pal, reverse=True) and pal[0] > 3 * pal[2] and pal[-1] == 0, pal


def test_per_layer_results(content, style):
    g = M.gram_distance(content, style)
    assert set(g) == {*M.STYLE_LAYERS, "mean"}
    assert g["mean"] == pytest.approx(np.mean([g[k] for k in M.STYLE_LAYERS]))
    w = M.gaussian_wasserstein(content, style, layers=("relu2_1",))
    assert set(w) == {"relu2_1", "mean"} and w["relu2_1"] > 0
    assert M.gram_distance(content, M.style_grams(style)) == g  # the style's Grams, kept


def test_palette_ignores_layout_but_sees_colour(content, style):
    assert M.palette_distance(shuffle(content), style) == pytest.approx(
        M.palette_distance(content, style), rel=0.02)
    recoloured = imaging.color_transfer(content, style)  # the style's colours, content's layout
    assert M.palette_distance(recoloured, style) < 0.3 * M.palette_distance(content, style)
    # the layout is kept, so the content metrics still see the content
    assert M.ssim_luminance(recoloured, content) > M.ssim_luminance(shuffle(content), content)


def test_output_is_resized_to_the_content(content):
    small = imaging.resize_tensor(content, (48, 48))
    assert 0 < M.content_distance(small, content) < M.content_distance(blur(content, 4), content)
    assert M.ssim_luminance(small, content) > 0.8


def test_bad_tensor_is_a_restyle_error(content):
    with pytest.raises(RestyleError, match="expected a \\(1, 3, H, W\\) tensor"):
        M.content_distance(content[0], content)
    with pytest.raises(RestyleError, match="too small"):
        M.ssim_luminance(content[..., :8, :8], content[..., :8, :8])


def test_hed_finds_the_border_of_a_square():
    x = torch.full((1, 3, S, S), 0.3)
    x[..., 16:48, 16:48] = 0.9
    with torch.no_grad():
        e = get_hed()(x)[0, 0]
    assert e.shape == (S, S) and 0 <= e.min() and e.max() <= 1
    for y, xx in [(16, 32), (47, 32), (32, 16), (32, 47)]:  # on each side of the border
        assert e[y - 1:y + 2, xx].max() > 0.7, (y, xx)
    assert e[28:36, 28:36].max() < 0.05  # flat inside
    assert e[4:10, 28:36].max() < 0.1  # flat outside
    flat = torch.full((1, 3, S, S), 0.5)  # only the zero-padded image border may respond
    with torch.no_grad():
        assert get_hed()(flat)[0, 0, 16:-16, 16:-16].max() < 0.1


# ----------------------------------------------------------------------------- command line

@pytest.fixture
def files(tmp_path, content, style):
    paths = {}
    for name, t in [("content", content), ("style", style), ("out", blur(content, 2))]:
        paths[name] = tmp_path / f"{name}.png"
        imaging.save_image(t, paths[name])
    return paths


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_evaluate_writes_table_and_json(files, tmp_path, capsys):
    report = tmp_path / "metrics.json"
    code, out, err = run_cli(["evaluate", "--output", files["out"], "--content", files["content"],
                              "--style", files["style"], "--output", files["content"],
                              "--content", files["content"], "--style", files["style"],
                              "--json", report], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["output", "content↓", "ssim↑"]
    assert lines[1].startswith(str(files["out"])) and lines[2].startswith(str(files["content"]))
    data = json.loads(report.read_text())
    assert data["directions"] == M.DIRECTIONS and len(data["results"]) == 2
    blurred, same = (r["metrics"] for r in data["results"])
    assert same["ssim_luminance"] == pytest.approx(1.0) and blurred["ssim_luminance"] < 0.99
    assert "gaussian_wasserstein/relu5_1" in blurred


@pytest.mark.parametrize("case,pattern", [
    ("missing", "output image not found"),
    ("not_image", "is not an image file"),
    ("counts", "give one of each per triple"),
    ("json_folder", "does not exist"),
])
def test_cli_bad_input_is_one_line_exit_2(case, pattern, files, tmp_path, capsys):
    args = ["evaluate", "--output", files["out"], "--content", files["content"],
            "--style", files["style"]]
    if case == "missing":
        args[2] = tmp_path / "nope.png"
    elif case == "not_image":
        (tmp_path / "x.png").write_text("not an image")
        args[4] = tmp_path / "x.png"
    elif case == "counts":
        args += ["--style", files["style"]]
    elif case == "json_folder":
        args += ["--json", tmp_path / "no" / "m.json"]
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("restyle: error:") and pattern in err, err
