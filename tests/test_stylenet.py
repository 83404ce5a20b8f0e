"""Style networks: shapes, conditional instance norm and blending, files, training, the
network method (API, CLI), `restyle models` and ONNX export."""


import numpy as np
import pytest
import torch
from PIL import Image

from restyle.cli import main
from restyle.errors import RestyleError
from restyle.nets.stylenet import CondInstanceNorm, StyleNet, load_stylenet
from restyle.nets.training import read_log


def random_net(styles=("a", "b"), width=8, blocks=1, seed=0) -> StyleNet:
    """A network with random (not identity) normalisation parameters, so styles differ."""
    torch.manual_seed(seed)
    net = StyleNet(list(styles), width, blocks)
    for norm in net.norms():
        norm.gamma.data.uniform_(0.5, 1.5)
        norm.beta.data.normal_(0, 0.5)
    return net.eval()


def test_shapes_any_size_and_output_range():
    net = random_net()
    for h, w in [(32, 32), (37, 53), (64, 17)]:
        y = net.stylize(torch.rand(2, 3, h, w), "a")
        assert y.shape == (2, 3, h, w)
        assert 0 <= float(y.min()) and float(y.max()) <= 1
    assert sum(p.numel() for p in StyleNet(["x"]).parameters()) == pytest.approx(425e3, rel=0.01)
    with pytest.raises(RestyleError, match="too small"):
        net(torch.rand(1, 3, 3, 40), net.mix_vector(0))


@pytest.mark.parametrize("h,w", [(12, 16), (11, 14), (9, 13)])
def test_fast_inference_convolutions_compute_the_same_numbers(h, w):
    """The up-stage (nearest 2x, reflect pad, 3x3 conv) as a sub-pixel convolution and the
    9x9 output convolution on the space-to-depth map: equal to the plain layers, odd sizes
    too, and their derived weights follow the layer's weights when these change."""
    import torch.nn.functional as F
    from restyle.nets.stylenet import conv_space_to_depth, reflect_pad, upsample2_conv3
    torch.manual_seed(0)
    x = torch.rand(1, 8, h, w)
    up = torch.nn.Conv2d(8, 4, 3)
    plain = up(F.pad(F.interpolate(x, scale_factor=2, mode="nearest"), (1,) * 4, mode="reflect"))
    with torch.no_grad():
        assert torch.allclose(upsample2_conv3(x, up), plain, atol=1e-5)
    last = torch.nn.Conv2d(8, 3, 9)
    with torch.no_grad():
        assert torch.allclose(conv_space_to_depth(x, last), last(reflect_pad(x, 4)), atol=1e-5)
        last.weight.mul_(-1)  # new weights: the cached derived weights are made again
        assert torch.allclose(conv_space_to_depth(x, last), last(reflect_pad(x, 4)), atol=1e-5)
    # the whole network: inference (every shortcut) against the differentiable training path
    net = random_net(("a", "b"), width=8, blocks=1)
    image, mix = torch.rand(1, 3, 4 * h, 4 * w), net.mix_vector("b", 1)
    with torch.no_grad():
        fast = net(image, mix)
    assert torch.allclose(fast, net(image.clone().requires_grad_(True), mix).detach(), atol=1e-4)


def test_conditional_instance_norm_normalises_then_applies_the_style():
    norm = CondInstanceNorm(4, 2)
    norm.gamma.data = torch.tensor([[1.0, 2, 3, 4], [0.5, 0.5, 0.5, 0.5]])
    norm.beta.data = torch.tensor([[0.0, 1, 2, 3], [-1.0, -1, -1, -1]])
    x = torch.randn(3, 4, 9, 11) * 5 + 7
    y = norm(x, torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0]]))
    mean, std = y.mean((2, 3)), y.std((2, 3), unbiased=False)
    assert torch.allclose(mean[0], norm.beta.data[0], atol=1e-4)
    assert torch.allclose(std[0], norm.gamma.data[0], atol=1e-3)
    assert torch.allclose(mean[2], norm.beta.data[1], atol=1e-4)
    assert torch.allclose(std[2], norm.gamma.data[1], atol=1e-3)


def test_blending_mixes_the_style_parameters():
    net = random_net()
    x = torch.rand(1, 3, 40, 40)
    blended = net.stylize(x, {"a": 0.3, "b": 0.7})
    # the same as a one-style network whose parameters are the 0.3/0.7 mix
    single = StyleNet(["mix"], 8, 1).eval()
    state = net.state_dict()
    single.load_state_dict({k: (0.3 * v[0] + 0.7 * v[1])[None] if k.endswith(("gamma", "beta"))
                            else v for k, v in state.items()})
    assert torch.allclose(blended, single.stylize(x, 0), atol=1e-5)
    a, b = net.stylize(x, "a"), net.stylize(x, "b")
    assert float((a - b).abs().mean()) > 0.01  # the styles differ
    assert torch.allclose(net.stylize(x, [2, 0]), a) and torch.allclose(net.stylize(x, {"b": 5}), b)
    assert torch.allclose(net.mix_vector({"a": 1, "b": 3}), torch.tensor([[0.25, 0.75]]))
    for bad, msg in [({"c": 1}, "no style 'c'"), ([1, -1], "non-negative"), ([0, 0], "positive"),
                     ([1], "1 weights for 2")]:
        with pytest.raises(RestyleError, match=msg):
            net.mix_vector(bad)


def test_save_and_load_roundtrip_and_bad_files(tmp_path):
    net = random_net()
    path = net.save(tmp_path / "m.safetensors", steps=12)
    loaded = load_stylenet(path)
    assert loaded.styles == ["a", "b"] and loaded.metadata["steps"] == "12"
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(loaded.stylize(x, "b"), net.stylize(x, "b"), atol=5e-3)  # float16
    (tmp_path / "bad.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(RestyleError, match="not a readable safetensors"):
        load_stylenet(tmp_path / "bad.safetensors")
    with pytest.raises(RestyleError, match="not found"):
        load_stylenet(tmp_path / "missing.safetensors")
    from restyle.nets.decoder import Decoder
    Decoder("relu1_1").save(tmp_path / "dec.safetensors")
    with pytest.raises(RestyleError, match="not a restyle style network"):
        load_stylenet(tmp_path / "dec.safetensors")


# ----------------------------------------------------------------------------- training

TINY = dict(width=8, blocks=1, batch=2, crop=48, style_size=64, holdout=1, eval_size=48,
            echo=None, log_every=1)


def test_training_lowers_the_style_loss_and_resumes_exactly(photo_dir, style_dir, tmp_path):
    from restyle.nets.train_style import train_style
    styles = sorted(style_dir.iterdir())
    kw = dict(steps=60, lr=5e-3, warmup=0, data_dir=photo_dir, eval_every=60, **TINY)
    summary = train_style(styles, tmp_path / "a", **kw)
    assert summary["finished"]
    evals = [r["eval"] for r in read_log(tmp_path / "a" / "log.jsonl") if "eval" in r]
    assert [e["step"] for e in evals] == [0, 60]
    assert evals[-1]["style"] < 0.7 * evals[0]["style"]  # on a held-out photo
    for before, after in zip(evals[0]["style_each"], evals[-1]["style_each"]):
        assert after < 0.9 * before  # every style learnt
    assert (tmp_path / "a" / "preview.png").exists()
    net = load_stylenet(tmp_path / "a" / "stylenet.safetensors")
    assert net.styles == ["bands", "stripes"] and net.metadata["steps"] == "60"

    # resume: 3 steps + 3 steps == 6 steps straight
    kw6 = dict(kw, steps=6, eval_every=100)
    train_style(styles, tmp_path / "b", stop_at_step=3, **kw6)
    with pytest.raises(RestyleError, match="width=8"):
        train_style(styles, tmp_path / "b", **{**kw6, "width": 12})
    train_style(styles, tmp_path / "b", **kw6)
    train_style(styles, tmp_path / "c", **kw6)
    loss_b = [r["loss"] for r in read_log(tmp_path / "b" / "log.jsonl") if "loss" in r]
    loss_c = [r["loss"] for r in read_log(tmp_path / "c" / "log.jsonl") if "loss" in r]
    assert len(loss_b) == 6 and loss_b == pytest.approx(loss_c, rel=1e-5)


def test_tone_loss_compares_light_and_dark_layouts():
    from restyle.nets.train_style import tone_loss
    x = torch.zeros(1, 3, 64, 64)
    x[..., :, 32:] = 0.8  # dark left half, light right half
    assert float(tone_loss(x, x)) == 0
    assert float(tone_loss(x * 0.5 + 0.1, x)) < 0.1 * float(tone_loss(0.8 - x, x))  # 1/16: dimmed vs swapped
    assert float(tone_loss(x + 0.15, x)) == pytest.approx(0, abs=1e-10)  # overall brightness is free
    assert float(tone_loss(x + 0.1 * torch.rand_like(x), x)) < 1e-3  # fine texture averages out


def test_tone_weight_keeps_the_photos_lights_and_darks(photo_dir, style_dir, tmp_path):
    """The same run with and without the tone loss: with it, the held-out photo's stylised
    light-and-dark layout is closer to the photo's."""
    from restyle import imaging
    from restyle.nets.train_style import tone_loss, train_style
    styles = sorted(style_dir.iterdir())
    kw = dict(steps=30, lr=5e-3, warmup=0, data_dir=photo_dir, eval_every=100, **TINY)
    photos = torch.cat([imaging.to_tensor(Image.open(p).convert("RGB").resize((64, 64)))
                        for p in sorted(photo_dir.iterdir())])
    tone = {}
    for weight in (0.0, 50.0):
        run = tmp_path / f"tone{weight:g}"
        train_style(styles, run, tone_weight=weight, palette_weight=0.0, **kw)
        net = load_stylenet(run / "stylenet.safetensors")
        tone[weight] = sum(float(tone_loss(net.stylize(photos, k), photos)) for k in net.styles)
    assert tone[50.0] < 0.7 * tone[0.0]
    assert any("tone" in r for r in read_log(tmp_path / "tone50" / "log.jsonl"))


def test_a_run_checkpointed_before_the_tone_and_palette_losses_resumes(photo_dir, style_dir,
                                                                        tmp_path):
    """A checkpoint whose settings lack the later loss weights resumes with them at 0 (as
    it was trained); the new defaults (10) are refused with the settings to repeat."""
    from restyle.nets.train_style import train_style
    from restyle.nets.training import CHECKPOINT, load_checkpoint
    kw = dict(steps=4, data_dir=photo_dir, eval_every=100, warmup=0, init_from="none", **TINY)
    old = dict(kw, tone_weight=0.0, palette_weight=0.0)
    train_style([style_dir / "bands.png"], tmp_path / "run", stop_at_step=2, **old)
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    for key in ("tone_weight", "palette_weight"):
        del state["config"][key]
    torch.save(state, tmp_path / "run" / CHECKPOINT)
    with pytest.raises(RestyleError, match=r"palette_weight=0\.0 \(asked: 10\.0\)"):
        train_style([style_dir / "bands.png"], tmp_path / "run", **kw)
    train_style([style_dir / "bands.png"], tmp_path / "run", **old)
    assert read_log(tmp_path / "run" / "log.jsonl")[-1]["step"] == 4


def test_palette_loss_compares_colour_distributions_wherever_the_colours_are():
    from restyle.imaging import luminance
    from restyle.nets.train_style import palette_directions, palette_loss, palette_target
    from .conftest import stripes
    painting = torch.from_numpy(stripes(64, period=8)).permute(2, 0, 1)[None].float() / 255
    dirs = palette_directions()
    assert dirs.shape == (3, 32) and torch.allclose(dirs.norm(dim=0), torch.ones(32))
    target = palette_target(painting, dirs)[None]
    same = float(palette_loss(painting.flip(-1).flip(-2), dirs, target))  # moved, not changed
    cast = float(palette_loss(painting[:, [1, 2, 0]], dirs, target))  # other hues
    grey = float(palette_loss(luminance(painting).expand(-1, 3, -1, -1), dirs, target))
    assert same < 1e-3 and cast > 20 * max(same, 1e-3) and grey > 20 * max(same, 1e-3)
    # colour proportions count: all red, or all blue, is far from half and half
    red = painting.clone()
    red[:] = painting[..., :1, :1]
    assert float(palette_loss(red, dirs, target)) > 20 * max(same, 1e-3)


def test_palette_weight_brings_the_paintings_colours(photo_dir, style_dir, tmp_path):
    """The same run with and without the palette loss: with it, held-out photos stylised
    in each painting have colour distributions closer to the painting's."""
    from restyle import imaging
    from restyle.nets.train_style import palette_directions, palette_loss, palette_target, \
        train_style
    styles = sorted(style_dir.iterdir())
    kw = dict(steps=30, lr=5e-3, warmup=0, data_dir=photo_dir, eval_every=100, **TINY)
    photos = torch.cat([imaging.to_tensor(Image.open(p).convert("RGB").resize((64, 64)))
                        for p in sorted(photo_dir.iterdir())])
    dirs = palette_directions()
    targets = {f.stem: palette_target(imaging.to_tensor(Image.open(f).convert("RGB")), dirs)
               for f in styles}
    palette = {}
    for weight in (0.0, 20.0):
        run = tmp_path / f"palette{weight:g}"
        train_style(styles, run, palette_weight=weight, tone_weight=0.0, **kw)
        net = load_stylenet(run / "stylenet.safetensors")
        palette[weight] = sum(float(palette_loss(net.stylize(photos, k), dirs,
                                                 targets[k].expand(len(photos), -1, -1)))
                              for k in net.styles)
    assert palette[20.0] < 0.7 * palette[0.0]
    assert any("palette" in r for r in read_log(tmp_path / "palette20" / "log.jsonl"))


def test_lite_loss_network_trains_and_the_vgg16_judge_scores(photo_dir, style_dir, tmp_path):
    from restyle.nets.train_style import train_style
    styles = sorted(style_dir.iterdir())
    kw = dict(steps=40, lr=5e-3, warmup=0, data_dir=photo_dir, eval_every=40, loss_net="lite",
              content_layer="relu4_1", style_layers="relu1_1,relu2_1,relu3_1,relu4_1", **TINY)
    train_style(styles, tmp_path / "lite", **kw)
    log = read_log(tmp_path / "lite" / "log.jsonl")
    evals = [r["eval"] for r in log if "eval" in r]
    assert [e["step"] for e in evals] == [0, 40]
    assert evals[-1]["style"] < 0.7 * evals[0]["style"]  # in the lite encoder's space ...
    assert evals[-1]["judge_gram"] < 0.8 * evals[0]["judge_gram"]  # ... and the VGG16's
    assert len(evals[-1]["judge_gram_each"]) == 2 and evals[0]["judge_content"] > 0
    net = load_stylenet(tmp_path / "lite" / "stylenet.safetensors")
    assert "adain-lite" in net.metadata["loss_network"]
    with pytest.raises(RestyleError, match="no layer relu4_2"):
        train_style(styles, tmp_path / "bad", **{**kw, "content_layer": "relu4_2"})


def test_adding_a_style_trains_only_its_own_parameters(photo_dir, style_dir, tmp_path):
    from restyle.nets.train_style import train_style
    base = random_net(("bands",), width=8, blocks=1)
    base_path = base.save(tmp_path / "base.safetensors")
    train_style([style_dir / "stripes.png"], tmp_path / "grow", steps=5, add_to=base_path,
                data_dir=photo_dir, eval_every=100, lr=1e-2, warmup=0, **TINY)
    grown = load_stylenet(tmp_path / "grow" / "stylenet.safetensors")
    assert grown.styles == ["bands", "stripes"]
    old = load_stylenet(base_path).state_dict()
    changed_new_rows = False
    for k, v in grown.state_dict().items():
        if k.endswith(("gamma", "beta")):
            assert torch.equal(v[:1], old[k])  # the old style is untouched
            changed_new_rows |= not torch.allclose(v[1], old[k][0], atol=1e-3)
        else:
            assert torch.equal(v, old[k])  # shared weights frozen
    assert changed_new_rows
    with pytest.raises(RestyleError, match="already has the styles"):
        train_style([style_dir / "bands.png"], tmp_path / "again", steps=5, add_to=base_path,
                    data_dir=photo_dir, **TINY)


def test_init_from_starts_a_new_run_from_a_trained_network(photo_dir, style_dir, tmp_path):
    from restyle.nets.train_style import train_style
    base = random_net(("bands", "stripes"), width=8, blocks=1)
    base_path = base.save(tmp_path / "base.safetensors")
    styles = [style_dir / "bands.png", style_dir / "stripes.png"]
    kw = dict(data_dir=photo_dir, eval_every=100, warmup=0, **TINY)
    # zero steps of training: the run starts exactly at the given network, at its width
    train_style(styles, tmp_path / "tune", steps=1, stop_at_step=0, init_from=base_path,
                strength=0.3, **kw)
    start = load_stylenet(tmp_path / "tune" / "stylenet.safetensors").state_dict()
    assert all(torch.equal(v, base.state_dict()[k].half().float()) for k, v in start.items())
    log = read_log(tmp_path / "tune" / "log.jsonl")
    assert log[0]["init_from"] == str(base_path) and log[0]["config"]["width"] == 8
    with pytest.raises(RestyleError, match="already holds a run"):
        train_style(styles, tmp_path / "tune", steps=1, init_from=base_path, strength=0.3, **kw)
    # other styles: the shared weights, each new style at the mean of the old ones
    train_style([style_dir / "bands.png"], tmp_path / "other", steps=1, stop_at_step=0,
                init_from=base_path, names=["new"], **kw)
    other = load_stylenet(tmp_path / "other" / "stylenet.safetensors")
    assert other.styles == ["new"]
    for k, v in other.state_dict().items():
        want = base.state_dict()[k]
        want = want.mean(0, keepdim=True) if k.endswith(("gamma", "beta")) else want
        assert torch.allclose(v, want.half().float(), atol=2e-3)
    with pytest.raises(RestyleError, match="do not go together"):
        train_style(styles, tmp_path / "x", steps=1, init_from=base_path, add_to=base_path, **kw)


def test_auto_init_starts_new_runs_from_the_installed_painters(photo_dir, style_dir, tmp_path,
                                                               monkeypatch):
    from restyle.nets.train_style import train_style
    models = tmp_path / "models"
    models.mkdir()
    base = random_net(("a", "b"), width=8, blocks=1)
    base.save(models / "painters.safetensors")
    monkeypatch.setenv("RESTYLE_MODELS", str(models))
    kw = dict(data_dir=photo_dir, eval_every=100, warmup=0, steps=2, **TINY)
    style = [style_dir / "bands.png"]
    said = []
    train_style(style, tmp_path / "auto", stop_at_step=0, **{**kw, "echo": said.append})
    assert any("installed painters" in m for m in said)
    start = load_stylenet(tmp_path / "auto" / "stylenet.safetensors").state_dict()
    assert torch.equal(start["down.0.conv.weight"], base.state_dict()["down.0.conv.weight"].half().float())
    assert read_log(tmp_path / "auto" / "log.jsonl")[0]["init_from"].endswith("painters.safetensors")
    # resuming that run, another shape, or "none": no automatic start
    train_style(style, tmp_path / "auto", **kw)
    assert read_log(tmp_path / "auto" / "log.jsonl")[-1]["step"] == 2
    train_style(style, tmp_path / "wide", stop_at_step=0, **{**kw, "width": 12})
    train_style(style, tmp_path / "none", stop_at_step=0, init_from="none", **kw)
    for run in ("wide", "none"):
        assert read_log(tmp_path / run / "log.jsonl")[0]["init_from"] is None


def test_distill_loss_counts_pixels_and_strokes():
    from skimage import data
    from restyle.nets.train_style import distill_loss
    t = torch.tensor(data.astronaut()[::8, ::8].copy()).permute(2, 0, 1)[None].float() / 255
    assert float(distill_loss(t, t)) == 0
    flat = t.mean(dim=(-2, -1), keepdim=True).expand_as(t)  # the colours, no strokes
    blur = torch.nn.functional.avg_pool2d(t, 3, 1, 1, count_include_pad=False)
    off = (t + 0.05).clamp(0, 1)  # every stroke kept, a little brighter
    assert float(distill_loss(off, t)) < float(distill_loss(blur, t)) < float(distill_loss(flat, t))
    # the steps term: a blurred copy costs far more than its pixel difference says
    pixels = float((blur - t).abs().mean()) / float((off - t).abs().mean())
    assert float(distill_loss(blur, t)) / float(distill_loss(off, t)) > 2 * pixels


def test_distillation_copies_the_teachers_pictures(photo_dir, style_dir, tmp_path):
    """A narrower student learns a teacher network's pictures with no loss network in its
    steps: the held-out distance to the teacher falls, the styles stay the teacher's."""
    from restyle.nets.train_style import train_style
    from restyle import imaging
    from restyle.nets.train_style import distill_loss
    teacher = random_net(("other", "stripes", "bands"), width=8, blocks=1)
    torch.manual_seed(1)
    teacher.norms()[-1].beta.data.normal_(0, 2.0)  # styles far apart (0.28-0.37)
    teacher_path = teacher.save(tmp_path / "teacher.safetensors")
    styles = [style_dir / "bands.png", style_dir / "stripes.png"]
    kw = dict(TINY, width=4, data_dir=photo_dir, warmup=0, lr=1e-2, teacher=str(teacher_path),
              perceptual_weight=0.0, tone_weight=0.0, palette_weight=0.0)
    train_style(styles, tmp_path / "student", steps=150, eval_every=150, **kw)
    log = read_log(tmp_path / "student" / "log.jsonl")
    evals = [r["eval"] for r in log if "eval" in r]
    assert [e["step"] for e in evals] == [0, 150]
    assert evals[-1]["teacher"] < 0.75 * evals[0]["teacher"]
    steps = [r for r in log if "loss" in r]
    assert steps and all("teacher" in r and "style" not in r for r in steps)  # no VGG in steps
    student = load_stylenet(tmp_path / "student" / "stylenet.safetensors")
    assert student.width == 4 and student.styles == ["bands", "stripes"]
    # each style learnt from the teacher's style of that name, not from its position
    teacher = load_stylenet(teacher_path)
    photos = torch.cat([imaging.to_tensor(Image.open(p).convert("RGB").resize((64, 64)))
                        for p in sorted(photo_dir.iterdir())])
    with torch.no_grad():
        for name in student.styles:
            mine = student.stylize(photos, name)
            near = {k: float(distill_loss(mine, teacher.stylize(photos, k))) for k in teacher.styles}
            assert min(near, key=near.get) == name, near
    assert log[0]["config"]["teacher"] == str(teacher_path)
    with pytest.raises(RestyleError, match="no style dots"):
        train_style([style_dir / "bands.png"], tmp_path / "x", steps=1, names=["dots"], **kw)
    with pytest.raises(RestyleError, match="nothing to learn"):
        train_style(styles, tmp_path / "y", steps=1, **{**kw, "teacher": ""})
    with pytest.raises(RestyleError, match="no-such-net"):
        train_style(styles, tmp_path / "z", steps=1, **{**kw, "teacher": "no-such-net"})


def test_shipped_painters_fast_paints_like_painters():
    """The shipped student is narrower than its teacher and paints each style like the
    teacher's style of that name: nearer to it than to any other of the teacher's styles."""
    from pathlib import Path

    from skimage import data

    import restyle
    from restyle import imaging
    from restyle.nets.train_style import distill_loss
    models = Path(restyle.__file__).resolve().parents[1] / "models"
    teacher = load_stylenet(models / "painters.safetensors").eval()
    fast = load_stylenet(models / "painters_fast.safetensors").eval()
    assert fast.styles == teacher.styles and fast.width < teacher.width
    assert fast.metadata["config"] and "painters" in fast.metadata["config"]
    photo = imaging.to_tensor(Image.fromarray(data.astronaut()).resize((160, 160)))
    with torch.no_grad():
        theirs = {k: teacher.stylize(photo, k) for k in teacher.styles}
        for name in fast.styles:
            mine = fast.stylize(photo, name)
            near = {k: float(distill_loss(mine, t)) for k, t in theirs.items()}
            assert min(near, key=near.get) == name, near
            assert float((mine - photo).abs().mean()) > 0.05  # a painting, not the photo


# ----------------------------------------------------------------------------- using a model

@pytest.fixture
def models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    random_net(("starry", "udnie"), width=8, blocks=1).save(folder / "tiny.safetensors")
    monkeypatch.setenv("RESTYLE_MODELS", str(folder))
    return folder


def test_network_method_api(models, photo):
    from restyle import transfer
    a = np.asarray(transfer(photo, "starry", method="network", model="tiny", size=64), float)
    b = np.asarray(transfer(photo, "udnie", method="network", model="tiny", size=64), float)
    mix = np.asarray(transfer(photo, ["starry:1", "udnie:1"], method="network", model="tiny",
                              size=64), float)
    assert a.shape == (64, 64, 3) and np.abs(a - b).mean() > 2
    # the painting's file names the style trained on it
    by_file = transfer(photo, "paintings/starry.jpg", method="network", model="tiny", size=64)
    assert np.array_equal(np.asarray(by_file, float), a)
    with pytest.raises(RestyleError, match="no style 'monet.jpg'"):
        transfer(photo, "monet.jpg", method="network", model="tiny", size=64)
    assert np.abs(mix - a).mean() > 1 and np.abs(mix - b).mean() > 1
    kept = np.asarray(transfer(photo, "starry", method="network", model="tiny", size=64,
                               preserve_color="luminance"), float)
    original = np.asarray(Image.open(photo).convert("RGB").resize((64, 64)), float)
    # colour kept: the chroma (R-G, B-G) is the photo's, not the network's
    assert np.abs((kept[..., 0] - kept[..., 1]) - (original[..., 0] - original[..., 1])).mean() < \
        np.abs((a[..., 0] - a[..., 1]) - (original[..., 0] - original[..., 1])).mean()
    with pytest.raises(RestyleError, match="no style 'monet'.*starry, udnie"):
        transfer(photo, "monet", method="network", model="tiny", size=64)
    with pytest.raises(RestyleError, match="no style network named 'nope'"):
        transfer(photo, "starry", method="network", model="nope", size=64)


def test_models_and_transfer_cli(models, photo, tmp_path, capsys):
    assert main(["models"]) == 0
    assert "tiny" in capsys.readouterr().out and "starry, udnie"
    out = tmp_path / "out.png"
    assert main(["transfer", str(photo), "--model", "tiny", "--style", "starry:0.3",
                 "--style", "udnie:0.7", "--size", "64", "-o", str(out), "-q"]) == 0
    assert Image.open(out).size == (64, 64)
    assert main(["transfer", str(photo), "--model", "tiny", "--style", "vangogh", "--size", "64",
                 "-o", str(tmp_path / "x.png"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "no style 'vangogh'" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_onnx_export_matches_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from restyle.nets.onnx_export import OnnxStyleNet, check_onnx, export_onnx
    net = random_net(("a", "b", "c"))
    path = export_onnx(net, tmp_path / "net.onnx")
    assert check_onnx(net, path) < 1e-4
    x = torch.rand(2, 3, 50, 70)
    mix = net.mix_vector({"a": 0.2, "c": 0.8}, 2)
    assert torch.allclose(OnnxStyleNet(path).run(x, mix), net(x, mix), atol=1e-4)
    with pytest.raises(RestyleError, match=".onnx"):
        export_onnx(net, tmp_path / "net.bin")


def test_inference_shortcuts_match_the_reference_ops():
    import torch.nn.functional as F

    from restyle.nets.stylenet import CondInstanceNorm, reflect_pad
    x = torch.randn(2, 6, 9, 11).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for p in (1, 2, 4):
            assert torch.equal(reflect_pad(x, p), F.pad(x, (p,) * 4, mode="reflect")), p
    # inference normalises each image with the batch-norm kernel: close to the float32
    # instance norm on the same (bfloat16) values, also for channels whose mean is several
    # times their spread, and for a batch whose images have different styles
    norm = CondInstanceNorm(6, 2)
    norm.gamma.data = torch.linspace(0.5, 2, 12).view(2, 6)
    norm.beta.data = torch.linspace(-1, 1, 12).view(2, 6)
    y = (x * torch.linspace(0.5, 3, 6).view(1, 6, 1, 1) + torch.linspace(-3, 8, 6).view(1, 6, 1, 1)
         ).contiguous(memory_format=torch.channels_last)
    mix = torch.tensor([[1.0, 0.0], [0.25, 0.75]])
    y = y.bfloat16()
    gamma, beta = mix @ norm.gamma.data, mix @ norm.beta.data
    exact = F.instance_norm(y.float()) * gamma[:, :, None, None] + beta[:, :, None, None]
    with torch.no_grad():
        fast = norm(y, mix).float()
        fast32 = norm(y.float(), mix)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert (fast - exact).abs().max() < 0.03 and (fast - exact).abs().mean() < 0.005
    assert torch.allclose(fast32, exact, atol=1e-4)
