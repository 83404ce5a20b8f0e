"""MGAN (Li & Wand 2016): its training (critic, generator, resume), its file and the method."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.nets.mgan import MGAN, load_mgan, mgan_for, thumbnail
from restyle.nets.train_mgan import train_mgan
from restyle.nets.training import read_log

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(batch=2, crop=48, style_size=96, holdout=1, eval_size=48, log_every=1, echo=None,
            disc_width=8, warmup=0)


@pytest.fixture(scope="module")
def trained(photo_dir, style_dir, tmp_path_factory):
    """A tiny MGAN for the stripes, trained 30 steps from the packaged adain-lite model."""
    out = tmp_path_factory.mktemp("mgan")
    summary = train_mgan(style_dir / "stripes.png", out / "run", steps=30, data_dir=photo_dir,
                         eval_every=30, lr=1e-3, disc_lr=1e-3, adv_weight=1.0,
                         export=out / "mgan_stripes.safetensors", **TINY)
    return out, summary


def test_training_learns_the_paintings_patches(trained):
    out, summary = trained
    assert summary["finished"] and summary["step"] == 30
    log = read_log(out / "run" / "log.jsonl")
    assert log[0]["start"] is True and log[0]["init"] == "adain_lite.safetensors"
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 31))
    # the critic learns to tell the painting's patches from the outputs' ...
    assert np.mean([r["critic"] for r in steps[-10:]]) < np.mean([r["critic"] for r in steps[:3]])
    evals = [r["eval"] for r in log if "eval" in r]
    assert [e["step"] for e in evals] == [0, 30]
    # ... and the decoder moves the held-out photo's statistics towards the painting's
    assert evals[-1]["judge_gram"] < 0.9 * evals[0]["judge_gram"]
    # at step 0 the output is adain-lite's reconstruction of the photo: close in content
    assert evals[0]["judge_content"] < 0.5
    assert (out / "run" / "preview.png").exists()


def test_resume_continues_exactly(photo_dir, style_dir, tmp_path):
    kw = dict(steps=4, data_dir=photo_dir, eval_every=100, **TINY)
    style = style_dir / "stripes.png"
    train_mgan(style, tmp_path / "b", stop_at_step=2, **kw)
    with pytest.raises(RestyleError, match="crop=48"):
        train_mgan(style, tmp_path / "b", **{**kw, "crop": 64})
    train_mgan(style, tmp_path / "b", **kw)
    train_mgan(style, tmp_path / "c", **kw)
    loss_b = [r["loss"] for r in read_log(tmp_path / "b" / "log.jsonl") if "loss" in r]
    loss_c = [r["loss"] for r in read_log(tmp_path / "c" / "log.jsonl") if "loss" in r]
    assert len(loss_b) == 4 and loss_b == pytest.approx(loss_c, rel=1e-4)


def test_the_file_knows_its_painting(trained, style_dir, photo, tmp_path):
    out, _ = trained
    path = out / "mgan_stripes.safetensors"
    model = load_mgan(path)
    assert isinstance(model, MGAN) and model.style_name == "stripes"
    meta = model.metadata
    assert meta["steps"] == "30" and json.loads(meta["config"])["crop"] == 48
    stripes, bands = (Image.open(style_dir / f"{n}.png").convert("RGB")
                      for n in ("stripes", "bands"))
    assert mgan_for(stripes, str(path)) is not None
    with pytest.raises(RestyleError, match="trained on stripes"):
        mgan_for(bands, str(path))
    assert torch.equal(thumbnail(stripes), thumbnail(stripes))
    with pytest.raises(RestyleError, match="not a restyle MGAN model"):
        load_mgan(restyle.nets.lite.default_lite_path())


def test_method_runs_the_decoder_and_mixes_the_photo(trained, style_dir, photo):
    out, _ = trained
    kw = dict(method="mgan", model=str(out / "mgan_stripes.safetensors"), size=64,
              precision="fp32")
    style = style_dir / "stripes.png"
    styled = np.asarray(restyle.transfer(photo, style, **kw), float)
    plain = np.asarray(restyle.transfer(photo, style, strength=0.0, **kw), float)
    photo64 = np.asarray(Image.open(photo).convert("RGB").resize((64, 64), Image.LANCZOS), float)
    assert styled.shape == (64, 64, 3)
    assert np.abs(plain - photo64).mean() < 2  # strength 0: the photo
    assert np.abs(styled - plain).mean() > 2


def test_cli_train_and_transfer(photo_dir, style_dir, photo, tmp_path, capsys, monkeypatch):
    style = style_dir / "stripes.png"
    rc = main(["train", "mgan", str(style), "--out", str(tmp_path / "run"), "--steps", "2",
               "--crop", "48", "--batch", "1", "--disc-width", "8", "--style-size", "96",
               "--data-dir", str(photo_dir), "--export", str(tmp_path / "m.safetensors"), "-q"])
    assert rc == 0 and (tmp_path / "m.safetensors").exists()
    # an installed model is found by its painting
    monkeypatch.setenv("RESTYLE_MODELS", str(tmp_path))
    rc = main(["transfer", str(photo), str(style), "--method", "mgan", "--size", "48",
               "-o", str(tmp_path / "out.png")])
    assert rc == 0 and Image.open(tmp_path / "out.png").size == (48, 48)
    capsys.readouterr()
    rc = main(["transfer", str(photo), str(style_dir / "bands.png"), "--method", "mgan",
               "--size", "48", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc != 0 and "no installed MGAN model" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
