"""The distilled AdaIN model: pruning from VGG16, its file, its training and the method."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle import imaging
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.nets import Decoder
from restyle.nets.lite import (LiteAdaIN, LiteEncoder, get_lite, lite_channels, load_lite,
                               prune_decoder, prune_vgg)
from restyle.nets.train_lite import rotate_hue, train_lite
from restyle.nets.training import read_log
from restyle.transforms import adain

from .conftest import random_decoder

TINY = dict(batch=2, crop=32, eval_size=32, holdout=1, log_every=1, width=0.125)


def photo_tensor(size=64):
    from skimage import data
    return imaging.to_tensor(Image.fromarray(data.astronaut()).resize((size, size)))


# ----------------------------------------------------------------------------- pruning

def test_full_width_pruning_is_vgg16_exactly(vgg):
    enc = LiteEncoder(width=1.0)
    kept = prune_vgg(enc, vgg)
    x = photo_tensor()
    with torch.no_grad():
        assert torch.allclose(enc(x)["relu4_1"], vgg(x, ["relu4_1"])["relu4_1"], atol=1e-3)
    assert torch.equal(kept, torch.arange(512))
    # and the full-width decoder pruned from a decoder is that decoder
    teacher = random_decoder("relu4_1")
    student = Decoder("relu4_1", width_mult=0.125, in_channels=512)
    student.feature_scale.copy_(teacher.feature_scale)
    prune_decoder(student, teacher, kept)
    f = vgg(x, ["relu4_1"])["relu4_1"]
    assert torch.allclose(student(f), teacher(f), atol=1e-5)


def test_taps_are_vgg16_layers_at_full_width(vgg):
    enc = LiteEncoder(width=1.0)
    prune_vgg(enc, vgg)
    x = photo_tensor()
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    with torch.no_grad():
        taps, want = enc.taps(x, layers), vgg(x, layers)
    assert sorted(taps) == layers
    for n in layers:
        assert torch.allclose(taps[n], want[n], atol=1e-3)
    assert torch.equal(enc.taps(x, ["relu4_1"])["relu4_1"], enc.features(x))
    with pytest.raises(RestyleError, match="no layer relu4_2"):
        enc.taps(x, ["relu4_2"])


def test_narrow_pruning_keeps_the_largest_filters_and_their_inputs(vgg):
    enc = LiteEncoder(width=0.25)
    assert enc.channels == lite_channels(0.25) == [16, 16, 32, 32, 64, 64, 64, 128]
    kept = prune_vgg(enc, vgg)
    assert len(kept) == 128 and bool((kept[1:] > kept[:-1]).all())
    norms = vgg.convs[7].weight.abs().flatten(1).sum(1)
    assert norms[kept].min() >= norms.topk(128).values.min()
    # conv1_2 of the student = conv1_2 of VGG restricted to kept outputs and kept inputs
    first = vgg.convs[0].weight.abs().flatten(1).sum(1).topk(16).indices.sort().values
    second = vgg.convs[1].weight.abs().flatten(1).sum(1).topk(16).indices.sort().values
    assert torch.equal(enc.convs[1].weight, vgg.convs[1].weight[second][:, first])
    with torch.no_grad():
        f = enc(photo_tensor())["relu4_1"]
    assert f.shape == (1, 128, 8, 8) and float(f.std()) > 0
    with pytest.raises(RestyleError, match="only has relu4_1"):
        enc(photo_tensor(), ["relu3_1"])
    with pytest.raises(RestyleError, match="width"):
        LiteEncoder(width=2.0)


# ----------------------------------------------------------------------------- the file

def test_save_load_round_trip_and_errors(vgg, tmp_path):
    model = LiteAdaIN(width=0.125, feature_scale=7.5)
    prune_vgg(model.encoder, vgg)
    path = model.save(tmp_path / "lite.safetensors", steps=12)
    back = load_lite(path)
    assert back.metadata["steps"] == "12" and back.width == 0.125
    assert float(back.decoder.feature_scale) == 7.5 and not back.training
    x = photo_tensor()
    with torch.no_grad():
        a = model.decoder(model.encoder(x)["relu4_1"])
        b = back.decoder(back.encoder(x)["relu4_1"])
    assert (a - b).abs().max() < 0.05 * a.abs().max()  # float16 storage
    assert get_lite(path) is get_lite(str(path))
    with pytest.raises(RestyleError, match="no distilled AdaIN model at .*restyle train adain-lite"):
        get_lite(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(RestyleError):
        load_lite(tmp_path / "junk.safetensors")
    Decoder("relu1_1").save(tmp_path / "dec.safetensors")
    with pytest.raises(RestyleError):
        load_lite(tmp_path / "dec.safetensors")


# ----------------------------------------------------------------------------- training

def test_rotate_hue_keeps_luminance_and_turns_chroma():
    x = photo_tensor(16).expand(3, -1, -1, -1).clone() * 0.8 + 0.1
    angles = torch.tensor([0.0, 2 * np.pi, np.pi])
    out = rotate_hue(x, angles)
    assert torch.allclose(out[0], x[0], atol=1e-5) and torch.allclose(out[1], x[1], atol=1e-4)
    y_in, y_out = imaging.rgb_to_yiq(x[2:]), imaging.rgb_to_yiq(out[2:])
    unclipped = ((imaging.yiq_to_rgb(y_in * torch.tensor([1, -1, -1]).view(1, 3, 1, 1)) - 0.5)
                 .abs() < 0.5).all(1)
    assert torch.allclose(y_out[:, 0][unclipped], y_in[:, 0][unclipped], atol=1e-4)
    assert torch.allclose(y_out[:, 1:][unclipped.expand(2, -1, -1).unsqueeze(0)],
                          -y_in[:, 1:][unclipped.expand(2, -1, -1).unsqueeze(0)], atol=1e-4)


def test_distillation_learns_and_resumes(photo_dir, style_dir, tmp_path):
    kw = dict(data_dir=photo_dir, style_dirs=[style_dir], eval_every=40, warmup=0, lr=3e-3,
              teacher_decoder=tmp_path / "none.safetensors", **TINY)
    export = tmp_path / "lite.safetensors"
    first = train_lite(tmp_path / "run", steps=40, stop_at_step=20, **kw)
    assert first["step"] == 20 and not first["finished"]
    summary = train_lite(tmp_path / "run", steps=40, export=export, **kw)
    assert summary["finished"] and summary["step"] == 40
    log = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in log if "loss" in r] == list(range(1, 41))
    evals = [r["eval"] for r in log if "eval" in r]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 40
    assert evals[-1]["adain_style"] < evals[0]["adain_style"]
    assert evals[-1]["psnr"] > evals[0]["psnr"] + 2
    start = [r for r in log if r.get("start")][0]
    assert start["init"] == "random decoder" and start["styles"] == ["bands.png", "stripes.png"]
    model = load_lite(export)
    assert model.metadata["steps"] == "40" and json.loads(model.metadata["config"])["width"] == 0.125
    with pytest.raises(RestyleError, match="crop=32"):
        train_lite(tmp_path / "run", steps=40, **{**kw, "crop": 48})


# ----------------------------------------------------------------------------- the method

@pytest.fixture(scope="module")
def lite_file(tmp_path_factory, vgg):
    """A pruned, untrained width-0.125 model whose decoder draws something visible."""
    torch.manual_seed(0)
    model = LiteAdaIN(width=0.125)
    prune_vgg(model.encoder, vgg)
    x = photo_tensor()
    with torch.no_grad():
        f = model.encoder(x)["relu4_1"]
        model.decoder.feature_scale.fill_(float(f.pow(2).mean().sqrt()))
        convs = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
        for conv in convs:
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            conv.bias.zero_()
        convs[-1].weight.mul_(0.2 / model.decoder(f).std())
        convs[-1].bias.fill_(0.5)
    return model.save(tmp_path_factory.mktemp("lite") / "lite.safetensors")


def test_adain_lite_strength_and_reconstruction(lite_file, photo, style_path):
    kw = dict(method="adain-lite", size=64, style_size=48, precision="fp32", palette="decoder",
              model=str(lite_file))
    plain = restyle.transfer(photo, style_path, strength=0.0, **kw)
    model = load_lite(lite_file)
    content = imaging.to_tensor(imaging.resize(imaging.load_image(photo, "photo"), (64, 64)))
    with torch.no_grad():
        expected = model.decoder.decode(model.encoder(content)["relu4_1"], (64, 64))
    diff = np.abs(np.asarray(plain, float) - np.asarray(imaging.to_pil(expected), float))
    assert plain.size == (64, 64) and diff.max() <= 1
    styled = np.asarray(restyle.transfer(photo, style_path, strength=1.0, **kw), float)
    assert np.abs(styled - np.asarray(plain, float)).mean() > 2
    # strength 1 is the decoder of AdaIN in the student's space
    style = imaging.to_tensor(imaging.resize(imaging.load_image(style_path, "style"),
                                             imaging.fit_size(*imaging.load_image(
                                                 style_path, "style").size, 48)))
    with torch.no_grad():
        t = adain(model.encoder(content)["relu4_1"], model.encoder(style)["relu4_1"])
        want = np.asarray(imaging.to_pil(model.decoder.decode(t, (64, 64))), float)
    assert np.abs(styled - want).mean() < 1.5


def test_cli_adain_lite_without_a_model(tmp_path, photo, style_path, monkeypatch, capsys):
    monkeypatch.setenv("RESTYLE_MODELS", str(tmp_path))
    out = tmp_path / "o.png"
    code = main(["transfer", str(photo), str(style_path), "-o", str(out), "--method",
                 "adain-lite", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.count("\n") == 1 and "no distilled AdaIN model" in err


def test_cli_train_adain_lite(photo_dir, style_dir, tmp_path, capsys):
    args = ["train", "adain-lite", "--out", tmp_path / "run", "--steps", "1", "--batch", "2",
            "--crop", "32", "--width", "0.125", "--data-dir", photo_dir, "--style-dir",
            style_dir, "--teacher-decoder", tmp_path / "none.safetensors", "-q"]
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    assert load_lite(tmp_path / "run" / "adain_lite.safetensors").metadata["steps"] == "1"
    assert main([str(a) for a in args[:4]] + ["--steps", "1", "--width", "2"]) == 2
    assert "--width" in capsys.readouterr().err


def test_the_shipped_models_load_and_fit_the_size_budget():
    from pathlib import Path

    from restyle.nets import load_decoder
    from restyle.nets.stylenet import load_stylenet
    models = Path(restyle.__file__).resolve().parents[1] / "models"
    decoders = sorted(models.glob("decoder_relu*_1.safetensors"))
    assert len(decoders) >= 4
    for path in decoders:
        assert load_decoder(path).level in path.name
    assert sum(p.stat().st_size for p in models.glob("*.safetensors")) < 30e6  # issue #6
    assert load_stylenet(models / "painters.safetensors").styles
    lite = load_lite(models / "adain_lite.safetensors")
    assert lite.width == 0.375 and int(lite.metadata["steps"]) >= 4000


def test_shipped_adain_lite_moves_the_colours_towards_the_style(photo):
    from skimage import data
    style = Image.fromarray(data.coffee()).resize((96, 64))
    out = restyle.transfer(photo, style, method="adain-lite", size=96, palette="decoder")
    mean = lambda img: np.asarray(img, float).reshape(-1, 3).mean(0)
    before = np.abs(mean(Image.open(photo)) - mean(style)).sum()
    assert np.abs(mean(out) - mean(style)).sum() < 0.6 * before
