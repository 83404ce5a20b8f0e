"""Automatic parameter tuning (--auto, restyle/autotune.py): small images, few iterations."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle import autotune, imaging
from restyle.cli import main
from restyle.methods.gatys import GatysParams, GatysProblem
from restyle.params import make


@pytest.fixture
def small_plan(monkeypatch):
    """A shorter search (two strengths, one style-scale variant): the same rungs and
    scoring, fewer trials, so the end-to-end tests stay quick."""
    monkeypatch.setattr(autotune, "STRENGTHS", (0.05, 0.5))
    monkeypatch.setattr(autotune, "STYLE_SCALES", (1.4,))


def _tensor(arr: np.ndarray, side: int) -> torch.Tensor:
    img = Image.fromarray(arr)
    return imaging.to_tensor(imaging.resize(img, imaging.fit_size(*img.size, side)))


def _style_gradient_norms(problem: GatysProblem, image: torch.Tensor) -> list[float]:
    """The norm of each style term's pixel gradient in the problem's own objective."""
    obj = problem.objective(tuple(image.shape[-2:]), bf16=False)
    x = image.clone().requires_grad_(True)
    feats = problem.vgg(x, obj.layers)
    norms = []
    for term in obj.terms:
        if term.name == "style":
            (g,) = torch.autograd.grad(term.weight * term.fn(feats, x), x, retain_graph=True)
            norms.append(float(g.norm()))
    return norms


def test_gradient_normalisation_equalises_layer_gradients(photo, style_path):
    content = imaging.to_tensor(Image.open(photo).resize((48, 48)))
    style = imaging.to_tensor(Image.open(style_path).convert("RGB").resize((64, 64)))
    p = make(GatysParams, precision="fp32")
    before = _style_gradient_norms(GatysProblem(content, [style], [1.0], p), content)
    assert max(before) / min(before) > 3  # the plain weights let some layers dominate
    layers = autotune.normalised_layer_weights(GatysProblem(content, [style], [1.0], p), content)
    q = make(GatysParams, precision="fp32", style_layers=layers)
    after = _style_gradient_norms(GatysProblem(content, [style], [1.0], q), content)
    assert len(after) == 5
    assert max(after) / min(after) < 1.01


def test_score_prefers_low_strength_when_the_style_saturates_early():
    """The scoring alone: the style gain saturates at a low strength while the content
    lost keeps rising (a face under a strong style), so the low strength wins; a flat
    photo whose style keeps improving with strength gets the high one."""
    def trials(content, gram):
        return [autotune.Trial({"strength": s}, content=c, ssim=1 - c / 2, gram=g, gram0=0.5)
                for s, c, g in zip((0.1, 0.5, 0.9), content, gram)]

    face = trials(content=(0.2, 0.5, 0.6), gram=(0.03, 0.025, 0.024))
    autotune._score(face)
    assert max(face, key=lambda t: t.score).settings["strength"] == 0.1
    flat = trials(content=(0.05, 0.07, 0.09), gram=(0.2, 0.05, 0.01))
    autotune._score(flat)
    assert max(flat, key=lambda t: t.score).settings["strength"] == 0.9


def test_tuner_lowers_strength_where_the_default_over_stylises(style_path, small_plan):
    """Small text (fine structure) under a strong painting: the default strength 0.5
    wipes the letters out; the tuner measures that and chooses a lower strength,
    and its output keeps more of the text than the default's."""
    from skimage import data
    from restyle.methods.gatys import stylize_by_optimization
    from restyle.evaluate.metrics import content_distance
    text = np.stack([data.text()[:, :320]] * 3, -1)
    content = _tensor(text, 64)
    style = imaging.to_tensor(Image.open(style_path).convert("RGB"))
    # line-searched L-BFGS: on this tiny black-and-white page, plain fp32 L-BFGS's second
    # step overshoots and six iterations barely leave the photo (bf16 happens not to)
    p = make(GatysParams, size=64, iterations=6, auto=True, line_search="strong_wolfe")
    result = autotune.tune(content, [style], [1.0], p)
    assert result.params.strength < 0.5
    assert result.chosen["strength"] == result.params.strength
    assert result.params.auto is False
    default = stylize_by_optimization(content, [style], [1.0],
                                      make(GatysParams, iterations=6, line_search="strong_wolfe"))
    tuned = stylize_by_optimization(content, [style], [1.0], result.params)
    assert content_distance(tuned, content) < content_distance(default, content)


def test_auto_transfer_reports_what_it_chose(photo, style_path, small_plan):
    image = restyle.transfer(photo, style_path, size=64, iterations=4, auto=True)
    assert image.size == (64, 64)
    assert np.asarray(image).std() > 10  # a picture, not a blank
    record = image.info["auto"]
    assert set(record["chosen"]) == set(autotune.TUNED)
    assert 0 < record["chosen"]["strength"] < 1
    assert record["trials"] == len(record["tried"]) >= 2 and record["seconds"] > 0
    assert {t["settings"]["strength"] for t in record["tried"]} == {0.05, 0.5}


def test_auto_cli_json_and_log_line(photo, style_path, tmp_path, capsys, small_plan):
    out = tmp_path / "out.png"
    assert main(["transfer", str(photo), str(style_path), "-o", str(out), "--size", "64",
                 "--iterations", "3", "--auto", "--strength", "0.3", "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out.strip().splitlines()[-1])
    assert record["params"]["auto"] is True
    chosen = record["auto_chosen"]["chosen"]
    assert "strength" not in chosen  # given by the user, so kept
    assert set(chosen) == set(autotune.TUNED) - {"strength"}
    assert "restyle: auto:" in captured.err


def test_auto_keeps_values_the_user_changed(photo, style_path):
    content = imaging.to_tensor(Image.open(photo).resize((48, 48)))
    style = imaging.to_tensor(Image.open(style_path).convert("RGB"))
    p = make(GatysParams, size=48, iterations=2, auto=True, strength=0.3,
             style_layers="relu2_1,relu3_1", tv_weight=2.0, style_scale=1.5)
    result = autotune.tune(content, [style], [1.0], p)
    assert result.chosen == {}
    assert (result.params.strength, result.params.style_layers, result.params.tv_weight,
            result.params.style_scale) == (0.3, "relu2_1,relu3_1", 2.0, 1.5)


def test_studio_form_has_the_auto_switch():
    from restyle.methods import get_method
    from restyle.studio.catalog import method_info
    info = method_info(type(get_method("gatys")))
    auto = next(d for d in info["params"] if d["name"] == "auto")
    assert auto["type"] == "bool" and auto["default"] is False and auto["primary"]


def test_auto_is_refused_for_video(tmp_path, style_path):
    with pytest.raises(restyle.RestyleError, match="--auto is not available for video"):
        restyle.api.video(tmp_path / "in.mp4", style_path, output=tmp_path / "out.mp4",
                          method="gatys", auto=True)
