"""Feature transforms (AdaIN, WCT), VGG decoders, their files and their training."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from restyle.cli import main
from restyle.errors import RestyleError
from restyle.nets import LEVELS, Decoder, load_decoder
from restyle.nets.decoder import read_metadata, reflect_pad1
from restyle.nets.train_decoder import train_decoder
from restyle.nets.training import RandomCrops, read_log, warmup_cosine
from restyle.transforms import adain, blend, channel_stats, wct

from .conftest import stripes


def correlated(seed, n=1, c=6, h=16, w=16, shift=0.0):
    """Features whose channels are correlated (a random mixing of independent noise)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(c, c, generator=g, dtype=torch.float64)
    z = torch.randn(n, c, h * w, generator=g, dtype=torch.float64)
    offset = shift * torch.randn(1, c, 1, generator=g, dtype=torch.float64)
    return (mix @ z + offset).reshape(n, c, h, w)


def covariance(f):
    x = f[0].reshape(f.shape[1], -1).double()
    x = x - x.mean(1, keepdim=True)
    return x @ x.T / x.shape[1]


# ----------------------------------------------------------------------------- transforms

def test_adain_gives_the_style_channel_statistics():
    content = correlated(1, n=2, c=16, h=12, w=10, shift=3.0).float()
    style = (correlated(2, n=2, c=16, h=7, w=9) * 5 - 2).float()
    out = adain(content, style)
    assert out.shape == content.shape and out.dtype == content.dtype
    assert torch.allclose(out.mean((2, 3)), style.mean((2, 3)), atol=1e-4)
    assert torch.allclose(out.std((2, 3), unbiased=False), style.std((2, 3), unbiased=False),
                          rtol=1e-3)
    # the layout is the content's: each channel is a positive affine map of the content's
    a = (out - out.mean((2, 3), keepdim=True)).flatten(2)
    b = (content - content.mean((2, 3), keepdim=True)).flatten(2)
    corr = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    assert corr.min() > 0.9999
    assert torch.allclose(adain(content, content), content, atol=1e-4)


def test_adain_style_statistics_given_directly_and_broadcast():
    content = correlated(3, n=3, c=8).float()
    style = correlated(4, n=1, c=8, h=5, w=5, shift=2.0).float()
    mean, std = channel_stats(style)
    direct = adain(content, style_mean=mean, style_std=std)
    assert torch.allclose(direct, adain(content, style), atol=1e-6)
    for i in range(3):  # a single style image is used for every content image
        assert torch.allclose(direct[i], adain(content[i:i + 1], style)[0], atol=1e-6)
    with pytest.raises(RestyleError, match="channels"):
        adain(content, correlated(5, c=4).float())
    with pytest.raises(RestyleError, match="batch"):
        adain(content, correlated(5, n=2, c=8).float())


def test_wct_gives_the_style_covariance():
    content = correlated(10, c=6, h=16, w=16, shift=1.0)
    style = correlated(11, c=6, h=20, w=20, shift=4.0) * 3
    out = wct(content, style, eps=1e-8)
    assert out.shape == content.shape and out.dtype == content.dtype
    target = covariance(style)
    error = (covariance(out) - target).norm() / target.norm()
    assert error < 1e-5
    assert torch.allclose(out.mean((2, 3)), style.mean((2, 3)), atol=1e-6)
    # AdaIN matches only the variances: the test above tells the two apart
    adain_error = (covariance(adain(content, style)) - target).norm() / target.norm()
    assert adain_error > 0.1
    assert torch.allclose(wct(content, content, eps=1e-8), content, atol=1e-5)


def test_wct_float32_batch_and_rank_deficient_features():
    style = correlated(12, n=1, c=32, h=4, w=4).float()  # 16 positions, 32 channels: singular
    content = correlated(13, n=2, c=32, h=8, w=8).float()
    out = wct(content, style)
    assert out.shape == content.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert torch.allclose(out.mean((2, 3)), style.mean((2, 3)).expand(2, -1), atol=1e-3)
    assert torch.allclose(out[1:], wct(content[1:], style), atol=1e-5)


def test_blend_interpolates_and_checks_alpha():
    a, b = correlated(20).float(), correlated(21).float()
    assert torch.equal(blend(a, b, 0.0), a)
    assert torch.allclose(blend(a, b, 1.0), b)
    assert torch.allclose(blend(a, b, 0.25), 0.75 * a + 0.25 * b, atol=1e-6)
    with pytest.raises(RestyleError, match="between 0 and 1"):
        blend(a, b, 1.5)


# ----------------------------------------------------------------------------- decoder

def test_upsampling_into_the_padding_matches_interpolate_then_pad():
    from restyle.nets.decoder import upsample2_reflect_pad1
    for h, w in ((1, 1), (3, 5), (4, 4)):
        x = torch.randn(2, 5, h, w).contiguous(memory_format=torch.channels_last)
        ref = F.pad(F.interpolate(x, scale_factor=2.0, mode="nearest"), (1, 1, 1, 1),
                    mode="reflect")
        out = upsample2_reflect_pad1(x)
        assert torch.equal(out, ref) and out.is_contiguous(memory_format=torch.channels_last)
    # the decoder's inference path (fused) and training path (interpolate, pad) agree
    dec = Decoder("relu2_1", width_mult=0.25)
    feats = torch.rand(1, 128, 6, 7)
    with torch.no_grad():
        fused = dec.eval()(feats, (12, 14))  # exactly 2x: the fused path
    assert torch.allclose(fused, dec.train()(feats, (12, 14)), atol=1e-5)


def test_reflect_pad_matches_torch_values_and_gradients():
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.equal(reflect_pad1(x), F.pad(x, (1, 1, 1, 1), mode="reflect"))
    assert torch.autograd.gradcheck(reflect_pad1, (x,))
    cl = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    assert reflect_pad1(cl).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("level", LEVELS)
def test_decoder_output_has_the_encoder_input_size(vgg, level):
    image = torch.rand(1, 3, 64, 64)
    dec = Decoder(level)
    feats = vgg(image, [level])[level]
    assert dec(feats).shape == (1, 3, 64, 64)
    odd = torch.rand(2, 3, 67, 45)
    assert dec(vgg(odd, [level])[level], odd.shape[-2:]).shape == (2, 3, 67, 45)


def test_decoder_mirrors_vgg16():
    sizes = {level: sum(p.numel() for p in Decoder(level).parameters()) for level in LEVELS}
    # the mirror of VGG16's convolutions up to each level (0.56 M / 2.9 M as in TRAINING-NOTES)
    assert sizes["relu1_1"] == 64 * 3 * 9 + 3
    assert sizes["relu3_1"] == 555075
    assert sizes["relu4_1"] == 2915139
    half = [(256, 64), (64, 64), (64, 32), (32, 32), (32, 3)]  # width_mult keeps in/out fixed
    assert (sum(p.numel() for p in Decoder("relu3_1", width_mult=0.5).parameters())
            == sum(i * o * 9 + o for i, o in half))
    with pytest.raises(RestyleError, match="relu4_1"):
        Decoder("relu4_2")


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    dec = Decoder("relu2_1", width_mult=0.5, feature_scale=17.5)
    path = dec.save(tmp_path / "dec.safetensors", steps=123, note="hello", psnr=21.5)
    loaded = load_decoder(path, level="relu2_1")
    assert loaded.level == "relu2_1" and loaded.width_mult == 0.5
    assert float(loaded.feature_scale) == 17.5
    assert loaded.metadata["steps"] == "123" and loaded.metadata["note"] == "hello"
    assert json.loads(loaded.metadata["psnr"]) == 21.5
    assert read_metadata(path)["level"] == "relu2_1"
    assert not any(p.requires_grad for p in loaded.parameters())
    feats = torch.randn(2, 128, 9, 7).abs() * 20
    a, b = dec(feats), loaded(feats)
    assert (a - b).abs().max() < 2e-3 * a.abs().max()  # float16 weights
    assert loaded.decode(feats).min() >= 0 and loaded.decode(feats).max() <= 1
    # weights are stored as float16: half the float32 size
    assert path.stat().st_size < 0.6 * sum(p.numel() * 4 for p in dec.parameters())


def test_load_errors(tmp_path):
    good = Decoder("relu1_1").save(tmp_path / "good.safetensors")
    with pytest.raises(RestyleError, match="not found"):
        load_decoder(tmp_path / "missing.safetensors")
    with pytest.raises(RestyleError, match="relu3_1 decoder is needed"):
        load_decoder(good, level="relu3_1")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file" * 10)
    with pytest.raises(RestyleError, match="not a readable safetensors"):
        load_decoder(garbage)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(RestyleError):
        load_decoder(truncated)
    from safetensors.torch import load_file, save_file
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(3)}, str(other))
    with pytest.raises(RestyleError, match="not a restyle decoder"):
        load_decoder(other)
    # metadata that does not fit the weights
    mismatched = tmp_path / "mismatched.safetensors"
    save_file(load_file(str(good)), str(mismatched),
              metadata={**read_metadata(good), "level": "relu2_1"})
    with pytest.raises(RestyleError, match="do not fit"):
        load_decoder(mismatched)
    with pytest.raises(RestyleError, match=".safetensors"):
        Decoder("relu1_1").save(tmp_path / "dec.pt")


# ----------------------------------------------------------------------------- training

TINY = dict(batch=2, crop=32, holdout=1, eval_size=32, echo=None, log_every=1)


def test_random_crops_are_reproducible_and_in_range(photo_dir):
    from restyle.nets.training import load_uint8
    images = [load_uint8(p, "photo") for p in sorted(photo_dir.iterdir())]
    crops = RandomCrops(images, 24)
    a = crops.sample(4, torch.Generator().manual_seed(1))
    b = crops.sample(4, torch.Generator().manual_seed(1))
    c = crops.sample(4, torch.Generator().manual_seed(2))
    assert a.shape == (4, 3, 24, 24) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1 and a.std() > 0.05


def test_warmup_cosine_schedule():
    lrs = [warmup_cosine(s, 100, 1e-3, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] < 0.02e-3
    assert warmup_cosine(5, None, 1e-3, 200) == pytest.approx(3e-5)  # length not planned yet


def test_training_reduces_the_loss(photo_dir, tmp_path):
    out = tmp_path / "run"
    summary = train_decoder("relu2_1", out, steps=60, lr=3e-3, warmup=0, data_dir=photo_dir,
                            eval_every=60, **TINY)
    assert summary["finished"] and summary["step"] == 60
    log = read_log(out / "log.jsonl")
    evals = [r["eval"] for r in log if "eval" in r]
    assert [e["step"] for e in evals] == [0, 60]
    assert evals[-1]["psnr"] > evals[0]["psnr"] + 3  # held-out photo, at least 3 dB better
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 61))
    first, last = np.mean([r["loss"] for r in steps[:5]]), np.mean([r["loss"] for r in steps[-5:]])
    assert last < 0.5 * first
    assert all(np.isfinite(r["feature"]) and r["sec_per_step"] > 0 for r in steps)
    dec = load_decoder(out / "decoder_relu2_1.safetensors", level="relu2_1")
    assert dec.metadata["steps"] == "60" and float(dec.metadata["feature_scale"]) > 1


def test_resume_continues_exactly(photo_dir, tmp_path):
    kw = dict(steps=6, data_dir=photo_dir, eval_every=100, warmup=2, **TINY)
    first = train_decoder("relu2_1", tmp_path / "a", stop_at_step=3, **kw)
    assert first["step"] == 3 and not first["finished"]
    assert [r["step"] for r in read_log(tmp_path / "a" / "log.jsonl") if "loss" in r] == [1, 2, 3]
    with pytest.raises(RestyleError, match="batch=2"):
        train_decoder("relu2_1", tmp_path / "a", **{**kw, "batch": 3})
    second = train_decoder("relu2_1", tmp_path / "a", **kw)
    assert second["step"] == 6 and second["finished"]
    straight = train_decoder("relu2_1", tmp_path / "b", **kw)
    log_a = [r for r in read_log(tmp_path / "a" / "log.jsonl") if "loss" in r]
    log_b = [r for r in read_log(tmp_path / "b" / "log.jsonl") if "loss" in r]
    assert [r["step"] for r in log_a] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in log_a] == pytest.approx([r["loss"] for r in log_b], rel=1e-5)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert straight["step"] == 6
    # a finished run, started again, does no more steps; --steps can extend it
    again = train_decoder("relu2_1", tmp_path / "a", **kw)
    assert again["step"] == 6
    longer = train_decoder("relu2_1", tmp_path / "a", **{**kw, "steps": 8})
    assert longer["step"] == 8


def test_adain_loss_and_export(photo_dir, style_dir, tmp_path):
    export = tmp_path / "models" / "decoder.safetensors"
    export.parent.mkdir()
    train_decoder("relu2_1", tmp_path / "run", steps=2, data_dir=photo_dir, style_dir=style_dir,
                  adain_loss=True, export=export, **TINY)
    log = read_log(tmp_path / "run" / "log.jsonl")
    steps = [r for r in log if "loss" in r]
    assert all(np.isfinite(r["adain_content"]) and r["adain_style"] > 0 for r in steps)
    assert "adain_style" in [r for r in log if "eval" in r][-1]["eval"]
    meta = load_decoder(export, level="relu2_1").metadata
    assert json.loads(meta["config"])["adain_loss"] is True and meta["steps"] == "2"


def test_training_input_errors(photo_dir, tmp_path):
    with pytest.raises(RestyleError, match="--steps"):
        train_decoder("relu2_1", tmp_path / "x", data_dir=photo_dir, **TINY)
    with pytest.raises(RestyleError, match="relu2_1"):
        train_decoder("relu9_1", tmp_path / "x", steps=1, data_dir=photo_dir, **TINY)
    with pytest.raises(RestyleError, match="not found"):
        train_decoder("relu2_1", tmp_path / "x", steps=1, data_dir=tmp_path / "none", **TINY)
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(stripes(48)).save(one / "a.png")
    with pytest.raises(RestyleError, match="more than 1"):
        train_decoder("relu2_1", tmp_path / "x", steps=1, data_dir=one, **TINY)
    with pytest.raises(RestyleError, match="folder .* does not exist"):
        train_decoder("relu2_1", tmp_path / "x", steps=1, data_dir=photo_dir,
                      export=tmp_path / "no" / "d.safetensors", **TINY)


# ----------------------------------------------------------------------------- command line

def test_cli_train_decoder(photo_dir, tmp_path, capsys):
    export = tmp_path / "decoder.safetensors"
    args = ["train", "decoder", "--level", "relu1_1", "--out", tmp_path / "run", "--steps", "2",
            "--batch", "2", "--crop", "32", "--data-dir", photo_dir, "--export", export, "-q"]
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    assert load_decoder(export, level="relu1_1").metadata["steps"] == "2"
    # the same command again resumes the finished run; other settings are refused
    assert main([str(a) for a in args]) == 0
    assert main([str(a) for a in args + ["--crop", "48"]]) == 2
    assert "crop=32" in capsys.readouterr().err
    assert main(["train", "network"]) == 2
    assert main(["train", "decoder", "--out", str(tmp_path / "y"), "--level", "relu9_1"]) == 2
    assert "--level: invalid choice: 'relu9_1'" in capsys.readouterr().err


def test_init_from_starts_a_new_run_from_exported_weights(photo_dir, tmp_path):
    kw = dict(data_dir=photo_dir, eval_every=100, warmup=0, lr=3e-3, **TINY)
    export = tmp_path / "dec.safetensors"
    first = train_decoder("relu2_1", tmp_path / "a", steps=30, export=export, **kw)
    assert first["finished"]
    fresh = train_decoder("relu2_1", tmp_path / "fresh", steps=1, **kw)
    warm = train_decoder("relu2_1", tmp_path / "warm", steps=1, init_from=export, **kw)
    start = [r for r in read_log(tmp_path / "warm" / "log.jsonl") if r.get("start")][0]
    assert start["init_from"] == str(export)
    # the warm run starts where the first one ended, far better than a fresh one
    assert warm["psnr"] > fresh["psnr"] + 2
    with pytest.raises(RestyleError, match="already holds a run"):
        train_decoder("relu2_1", tmp_path / "warm", steps=2, init_from=export, **kw)
    with pytest.raises(RestyleError, match="decodes relu2_1 features, deeper than relu1_1"):
        train_decoder("relu1_1", tmp_path / "other", steps=1, init_from=export, **kw)
    # a deeper decoder grows from it: its tail is the relu2_1 decoder
    deeper = train_decoder("relu3_1", tmp_path / "deeper", steps=1, init_from=export, **kw)
    assert deeper["step"] == 1
    grown = load_decoder(tmp_path / "deeper" / "decoder_relu3_1.safetensors")
    src = load_decoder(export)
    tail = [m for m in grown.modules() if isinstance(m, torch.nn.Conv2d)][-3:]
    assert [c.weight.shape for c in tail] == [m.weight.shape for m in src.modules()
                                              if isinstance(m, torch.nn.Conv2d)]


def test_graft_copies_the_shallower_decoder_into_the_tail():
    torch.manual_seed(0)
    small, big = Decoder("relu2_1"), Decoder("relu3_1")
    assert big.graft(small) == 3
    convs = lambda d: [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    big_convs, small_convs = convs(big), convs(small)
    assert len(big_convs) == 5
    for dst, src in zip(big_convs[2:], small_convs):
        assert torch.equal(dst.weight, src.weight) and torch.equal(dst.bias, src.bias)
    # the new head reads relu3_1's 256 channels and hands the tail relu2_1's 128
    assert big_convs[0].in_channels == 256 and big_convs[1].out_channels == 128
    with pytest.raises(RestyleError, match="grows from a shallower"):
        small.graft(big)
    with pytest.raises(RestyleError, match="different widths"):  # narrow: inputs are not scaled
        Decoder("relu3_1", width_mult=0.125).graft(Decoder("relu2_1", width_mult=0.125))
