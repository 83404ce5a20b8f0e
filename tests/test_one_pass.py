"""One-pass methods (AdaIN, WCT, style-swap): the style-swap maths, finding and loading
decoders, and each method end to end with tiny randomly initialised decoders."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import restyle
from restyle import imaging
from restyle.backbone import get_vgg
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.losses import content_loss
from restyle.nets import LEVELS, Decoder, load_decoder
from restyle.nets.decoder import default_decoder_path, get_decoder
from restyle.transforms import adain, channel_stats, style_swap

from .conftest import random_decoder, stripes

SIZE = 64
OUT_WH = (64, 43)  # the 90x60 content at --size 64


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A folder of tiny random decoders, one per level, whose outputs are not flat.

    Kaiming-initialised, features scaled by their RMS on a photo, and the last layer
    set so a reconstruction has mean ~0.5 and std ~0.2: saturated or constant outputs
    would make the comparisons below meaningless.
    """
    folder = tmp_path_factory.mktemp("models")
    for i, level in enumerate(LEVELS):
        dec = random_decoder(level, seed=i)
        dec.save(folder / f"decoder_{level}.safetensors", note="random, for tests")
    return folder


@pytest.fixture
def content(tmp_path) -> Path:
    from skimage import data
    path = tmp_path / "content.png"
    Image.fromarray(data.astronaut()).resize((90, 60), Image.LANCZOS).save(path)
    return path


@pytest.fixture
def style() -> np.ndarray:
    return stripes(48, period=8)


def pixels(img) -> np.ndarray:
    return np.asarray(img, dtype=float)


def content_tensor(path) -> torch.Tensor:
    return imaging.to_tensor(imaging.resize(imaging.load_image(path), OUT_WH))


def dec_file(models, level) -> str:
    return str(models / f"decoder_{level}.safetensors")


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- style-swap maths

def reference_style_swap(c, s, k, normalise=True):
    """The paper's formulation, literally: one-hot argmax, transposed conv, overlap counts."""
    patches = F.unfold(s, k)[0].T.reshape(-1, s.shape[1], k, k)
    norms = patches.flatten(1).norm(dim=1).view(-1, 1, 1, 1) if normalise else 1.0
    corr = F.conv2d(c, patches / norms)
    onehot = F.one_hot(corr.argmax(1), patches.shape[0]).permute(0, 3, 1, 2).float()
    ones = torch.ones(1, 1, *corr.shape[-2:])
    return F.conv_transpose2d(onehot, patches) / F.conv_transpose2d(ones, torch.ones(1, 1, k, k))


def test_style_swap_replaces_a_patch_by_an_identical_style_patch():
    g = torch.Generator().manual_seed(0)
    c = torch.randn(1, 8, 6, 7, generator=g)
    # next to an exact copy of the content, a decoy 10x larger and 0.9 correlated: its raw
    # dot products beat the copy's, so only the normalisation picks the copy
    decoy = 10 * (c + 0.5 * torch.randn(c.shape, generator=g))
    s = torch.cat([decoy, c, decoy], dim=-1)
    assert torch.allclose(style_swap(c, s), c, atol=1e-5)
    assert torch.allclose(style_swap(s, s), s, atol=1e-4)  # every patch matches itself
    assert not torch.allclose(reference_style_swap(c, s, 3, normalise=False), c, atol=0.5)
    # equally good matches (c and 2c normalise to the same patch): the first wins, as in
    # argmax, also when the two land in different chunks
    twice = torch.cat([c, 2 * c], dim=-1)
    for chunk_bytes in (1, 128 << 20):
        assert torch.allclose(style_swap(c, twice, max_chunk_bytes=chunk_bytes), c, atol=1e-5)


def test_style_swap_builds_the_output_from_style_patches_only():
    g = torch.Generator().manual_seed(1)
    c, s = torch.randn(2, 5, 7, 9, generator=g), torch.randn(1, 5, 6, 8, generator=g)
    # 1x1 patches: every output vector is one of the style's feature vectors
    out = style_swap(c, s, patch_size=1).permute(0, 2, 3, 1).reshape(-1, 5)
    dist = (out[:, None] - s[0].reshape(5, -1).T[None]).norm(dim=-1)
    assert dist.min(1).values.max() < 1e-5
    # 3x3 patches: the overlap-averaged chosen patches, chunked or not
    ref = reference_style_swap(c, s, 3)
    assert torch.allclose(style_swap(c, s), ref, atol=1e-5)
    assert torch.allclose(style_swap(c, s, max_chunk_bytes=1), ref, atol=1e-5)  # 1 patch a chunk
    # a style made of one repeated vector gives that vector everywhere
    flat = torch.arange(5.0).view(1, 5, 1, 1).expand(1, 5, 4, 4)
    assert torch.allclose(style_swap(c, flat), flat[:, :, :1, :1].expand(2, 5, 7, 9))


def test_style_swap_is_invariant_to_the_scale_of_its_inputs():
    g = torch.Generator().manual_seed(2)
    c, s = torch.randn(1, 6, 8, 8, generator=g), torch.randn(1, 6, 9, 7, generator=g)
    out = style_swap(c, s)
    assert torch.allclose(style_swap(7.0 * c, s), out)
    assert torch.allclose(style_swap(c, 3.0 * s), 3.0 * out, atol=1e-5)
    assert not torch.allclose(out, c, atol=0.1)


def test_style_swap_batches_and_errors():
    g = torch.Generator().manual_seed(3)
    c, s = torch.randn(2, 4, 6, 6, generator=g), torch.randn(2, 4, 5, 5, generator=g)
    out = style_swap(c, s)
    assert out.shape == c.shape and out.dtype == c.dtype
    assert torch.allclose(out[1:], style_swap(c[1:], s[1:]))
    assert style_swap(c.double(), s.double()).dtype == torch.float64
    with pytest.raises(RestyleError, match="too small for 7x7 patches"):
        style_swap(c, s, patch_size=7)
    with pytest.raises(RestyleError, match="channels"):
        style_swap(c, s[:, :3])
    with pytest.raises(RestyleError, match="at least 1"):
        style_swap(c, s, patch_size=0)


def test_mixing_adain_statistics_equals_mixing_adain_features():
    """Why restyle blends AdaIN styles by their statistics: it is the paper's feature mix."""
    g = torch.Generator().manual_seed(4)
    fc = torch.randn(1, 8, 6, 6, generator=g)
    styles = [torch.randn(1, 8, 5, 7, generator=g) * k + k for k in (1.0, 3.0, 0.5)]
    w = [0.2, 0.5, 0.3]
    stats = [channel_stats(s) for s in styles]
    mixed = adain(fc, style_mean=sum(wi * m for wi, (m, _) in zip(w, stats)),
                  style_std=sum(wi * sd for wi, (_, sd) in zip(w, stats)))
    assert torch.allclose(mixed, sum(wi * adain(fc, s) for wi, s in zip(w, styles)), atol=1e-5)


# ----------------------------------------------------------------------------- decoder files

def test_default_decoder_path_and_env_override(monkeypatch, tmp_path):
    monkeypatch.delenv("RESTYLE_MODELS", raising=False)
    packaged = Path(restyle.__file__).resolve().parents[1] / "models"
    assert default_decoder_path("relu4_1") == packaged / "decoder_relu4_1.safetensors"
    monkeypatch.setenv("RESTYLE_MODELS", str(tmp_path))
    assert default_decoder_path("relu3_1") == tmp_path / "decoder_relu3_1.safetensors"
    assert default_decoder_path("relu2_1", tmp_path / "x") == tmp_path / "x" / \
        "decoder_relu2_1.safetensors"
    with pytest.raises(RestyleError, match="decoders exist for"):
        default_decoder_path("relu4_2")


def test_get_decoder_loads_once_and_reloads_a_changed_file(tmp_path):
    path = tmp_path / "dec.safetensors"
    torch.manual_seed(0)
    Decoder("relu1_1", width_mult=0.125).save(path)
    a = get_decoder("relu1_1", path)
    assert get_decoder("relu1_1", str(path)) is a and not a.training
    torch.manual_seed(1)
    Decoder("relu1_1", width_mult=0.125).save(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later modification
    b = get_decoder("relu1_1", path)
    assert b is not a and not torch.equal(a.stages[0][0].weight, b.stages[0][0].weight)
    with pytest.raises(RestyleError, match="a relu3_1 decoder is needed"):
        get_decoder("relu3_1", path)


def test_a_missing_decoder_is_one_actionable_line(monkeypatch, tmp_path, content, style, models,
                                                  capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("RESTYLE_MODELS", str(empty))
    target = empty / "decoder_relu4_1.safetensors"
    with pytest.raises(RestyleError) as e:
        restyle.transfer(content, style, method="adain", size=SIZE)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"no relu4_1 decoder at {target}; make it with ")
    assert (f"`restyle train decoder --level relu4_1 --adain-loss --minutes 120 "
            f"--out runs/decoder_relu4_1 --export {target}`") in msg
    with pytest.raises(RestyleError, match=r"--level relu3_1 --minutes 120 .*decoder_relu3_1"):
        restyle.transfer(content, style, method="style-swap", size=SIZE)
    with pytest.raises(RestyleError, match="mkdir -p .*nope && restyle train decoder"):
        restyle.transfer(content, style, method="adain",
                         decoder=tmp_path / "nope" / "d.safetensors")
    # WCT names the first missing level and the levels whose decoders are there
    partial = tmp_path / "partial"
    partial.mkdir()
    for level in ("relu3_1", "relu1_1"):
        (partial / f"decoder_{level}.safetensors").symlink_to(dec_file(models, level))
    with pytest.raises(RestyleError, match=r"no relu4_1 decoder .* among the decoders present "
                                           r"\(3,1\)$"):
        restyle.transfer(content, style, method="wct", size=SIZE, decoder_dir=partial)
    Image.fromarray(style).save(tmp_path / "s.png")
    code, _, err = run_cli(["transfer", content, tmp_path / "s.png", "-o", tmp_path / "o.png",
                            "--method", "adain", "-q"], capsys)
    assert code == 2 and not (tmp_path / "o.png").exists()
    assert err.count("\n") == 1 and err.startswith("restyle: error: no relu4_1 decoder")


# ----------------------------------------------------------------------------- the methods

def reconstruction(models, method, image) -> torch.Tensor:
    """What strength=0 must give: the decoder(s) applied to the content's own features."""
    vgg = get_vgg()
    levels = {"adain": ["relu4_1"], "style-swap": ["relu3_1"], "wct": ["relu3_1", "relu2_1"]}
    for level in levels[method]:
        image = load_decoder(dec_file(models, level)).decode(vgg(image, [level])[level],
                                                             image.shape[-2:])
    return image


DECODER_ARGS = {"adain": lambda m: {"decoder": dec_file(m, "relu4_1")},
                "style-swap": lambda m: {"decoder": dec_file(m, "relu3_1")},
                "wct": lambda m: {"decoder_dir": str(m), "levels": "2,3"}}  # run 3, then 2


@pytest.mark.parametrize("method", ["adain", "wct", "style-swap"])
def test_strength_zero_is_the_reconstruction_and_strength_one_stylises(method, models, content, style):
    kw = dict(method=method, size=SIZE, style_size=48, precision="fp32", palette="decoder",
              **DECODER_ARGS[method](models))
    plain = restyle.transfer(content, style, strength=0.0, **kw)
    assert plain.size == OUT_WH
    expected = pixels(imaging.to_pil(reconstruction(models, method, content_tensor(content))))
    assert expected.std() > 10  # the random decoders draw something
    assert np.abs(pixels(plain) - expected).max() <= 1
    styled = pixels(restyle.transfer(content, style, strength=1.0, **kw))
    half = pixels(restyle.transfer(content, style, strength=0.5, **kw))
    assert np.abs(styled - expected).mean() > 2
    assert 0 < np.abs(half - expected).mean() < np.abs(styled - expected).mean()


def test_wct_runs_all_five_levels_from_the_models_folder(monkeypatch, models, content, style):
    monkeypatch.setenv("RESTYLE_MODELS", str(models))
    out = restyle.transfer(content, style, method="wct", size=SIZE, style_size=48,
                           levels="5,4,3,2,1")
    assert out.size == OUT_WH
    default = restyle.transfer(content, style, method="wct", size=SIZE, style_size=48)
    assert np.abs(pixels(out) - pixels(default)).mean() > 1  # default 4,3,2,1
    three = restyle.transfer(content, style, method="wct", size=SIZE, style_size=48, levels="3")
    assert np.abs(pixels(out) - pixels(three)).mean() > 1


@pytest.mark.parametrize("method", ["adain", "wct", "style-swap"])
def test_style_weights_blend_styles(method, models, content, style):
    green = np.zeros((48, 48, 3), np.uint8)
    green[::4, :, 1] = 255
    kw = dict(method=method, size=SIZE, style_size=48, precision="fp32",
              **DECODER_ARGS[method](models))
    single = pixels(restyle.transfer(content, style, **kw))
    first = pixels(restyle.transfer(content, [style, green], style_weights=[1, 0], **kw))
    mixed = pixels(restyle.transfer(content, [style, green], style_weights=[1, 1], **kw))
    mostly = pixels(restyle.transfer(content, [style, green], style_weights=[3, 1], **kw))
    other = pixels(restyle.transfer(content, green, **kw))
    assert np.abs(first - single).max() <= 1
    assert np.abs(mixed - single).mean() > 1 and np.abs(mixed - other).mean() > 1
    assert np.abs(mostly - single).mean() < np.abs(mixed - single).mean()
    assert np.abs(mostly - other).mean() > np.abs(mixed - other).mean()


@pytest.mark.parametrize("method", ["adain", "wct", "style-swap"])
def test_palette_takes_the_style_colours_mixed_with_the_photo_by_alpha(method, models, content):
    from skimage import data
    style = np.asarray(Image.fromarray(data.coffee()).resize((72, 48), Image.LANCZOS))
    kw = dict(method=method, size=SIZE, style_size=48, precision="fp32",
              **DECODER_ARGS[method](models))
    style_mu, style_cov = imaging.color_stats(imaging.to_tensor(Image.fromarray(style)))
    photo_mu, photo_cov = imaging.color_stats(content_tensor(content))

    def error(img, mu, cov):
        m, c = imaging.color_stats(imaging.to_tensor(img))
        return float((m - mu).abs().max()), float((c - cov).abs().max())

    matched = error(restyle.transfer(content, style, **kw), style_mu, style_cov)
    decoded = error(restyle.transfer(content, style, palette="decoder", **kw), style_mu, style_cov)
    # the tiny random decoders clip a lot, so exact statistics are not expected; much closer
    assert matched[0] < decoded[0] / 2 and matched[1] < decoded[1]
    photo = error(restyle.transfer(content, style, strength=0.0, **kw), photo_mu, photo_cov)
    photo_decoded = error(restyle.transfer(content, style, alpha=0.0, palette="decoder", **kw),
                          photo_mu, photo_cov)
    assert photo[0] < photo_decoded[0] / 2


def test_colour_statistics_transfer_and_mixture_maths():
    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[0.8, 0.1, 0.0], [0.3, 0.5, 0.1], [0.0, 0.2, 0.4]])
    source = (0.5 + 0.1 * torch.einsum("ij,bjhw->bihw", mix, torch.randn(1, 3, 40, 40,
                                                                        generator=g))).clamp(0, 1)
    a = imaging.color_stats(torch.rand(1, 3, 30, 30, generator=g) * 0.3 + 0.4)
    b = imaging.color_stats(torch.rand(1, 3, 30, 30, generator=g) * 0.2 + 0.3)
    target = imaging.mix_color_stats([a, b], [0.25, 0.75])
    # mixture moments: the statistics of the pooled samples
    both = torch.cat([torch.full((1, 3, 10, 30), 0.2), torch.full((1, 3, 30, 30), 0.6)], 2)
    mu, cov = imaging.mix_color_stats([imaging.color_stats(both[:, :, :10]),
                                       imaging.color_stats(both[:, :, 10:])], [1, 3])
    pooled = imaging.color_stats(both)
    assert torch.allclose(mu, pooled[0], atol=1e-6) and torch.allclose(cov, pooled[1], atol=1e-4)
    out = imaging.apply_color_stats(source, *target)
    got = imaging.color_stats(out)
    assert torch.allclose(got[0], target[0], atol=2e-3) and torch.allclose(got[1], target[1],
                                                                           atol=2e-3)
    # a weighted region: only its statistics are matched
    weight = torch.zeros(1, 1, 40, 40)
    weight[..., :20] = 1
    region = imaging.apply_color_stats(source, *target, weight=weight)
    got = imaging.color_stats(region, weight)
    assert torch.allclose(got[0], target[0], atol=2e-3)


def test_luminance_preservation_keeps_the_photo_colours(models, content, style):
    kw = dict(method="adain", size=SIZE, decoder=dec_file(models, "relu4_1"), precision="fp32")
    photo = imaging.rgb_to_yiq(content_tensor(content))[:, 1:]

    def chroma_error(img):
        return float((imaging.rgb_to_yiq(imaging.to_tensor(img))[:, 1:] - photo).abs().mean())

    kept = restyle.transfer(content, style, preserve_color="luminance", **kw)
    plain = restyle.transfer(content, style, **kw)
    assert chroma_error(kept) < 0.02 < chroma_error(plain)
    assert restyle.transfer(content, style, preserve_color="histogram", **kw).size == OUT_WH


def test_style_swap_inverse_by_optimization_needs_no_decoder(monkeypatch, tmp_path, content,
                                                             style):
    monkeypatch.setenv("RESTYLE_MODELS", str(tmp_path))  # no decoders here
    steps = []
    out = restyle.transfer(content, style, method="style-swap", invert="optimize", iterations=8,
                           size=SIZE, style_size=48, precision="fp32",
                           callbacks=[lambda p: steps.append(p.step)])
    assert out.size == OUT_WH and steps == list(range(1, 9))
    vgg = get_vgg()
    photo = content_tensor(content)
    swapped = style_swap(vgg(photo, ["relu3_1"])["relu3_1"],
                         vgg(imaging.to_tensor(Image.fromarray(style)), ["relu3_1"])["relu3_1"])
    loss = lambda img: float(content_loss(vgg(img, ["relu3_1"])["relu3_1"], swapped))  # noqa: E731
    assert loss(imaging.to_tensor(out)) < 0.7 * loss(photo)


def test_cli_runs_the_one_pass_methods(monkeypatch, models, content, style, tmp_path, capsys):
    style_file = tmp_path / "style.png"
    Image.fromarray(style).save(style_file)
    runs = {"adain": ["--decoder", dec_file(models, "relu4_1"), "--strength", "0.8"],
            "style-swap": ["--decoder", dec_file(models, "relu3_1"), "--patch-size", "1"],
            "wct": ["--levels", "3,2,1", "--strength", "0.5"]}
    monkeypatch.setenv("RESTYLE_MODELS", str(models))  # used by wct
    for method, extra in runs.items():
        out = tmp_path / f"{method}.png"
        code, stdout, err = run_cli(["transfer", content, style_file, "-o", out, "--method", method,
                                     "--size", SIZE, "--style-size", 48, "-q", *extra], capsys)
        assert code == 0, err
        assert "wrote" in stdout and Image.open(out).size == OUT_WH


def test_style_size_follows_the_output_by_default(models, content, style):
    kw = dict(method="adain", size=SIZE, precision="fp32", **DECODER_ARGS["adain"](models))
    auto = pixels(restyle.transfer(content, style, **kw))
    same = pixels(restyle.transfer(content, style, style_size=max(OUT_WH), **kw))
    small = pixels(restyle.transfer(content, style, style_size=24, **kw))
    assert np.abs(auto - same).max() <= 1  # 0 = the output's long side
    assert np.abs(auto - small).mean() > 1


@pytest.mark.parametrize("params, pattern", [
    (dict(method="adain", strength=1.5), "--strength must be at most 1"),
    (dict(method="adain", style_size=-1), "--style-size must be at least 0"),
    (dict(method="adain", iterations=3), "unknown parameter"),
    (dict(method="adain", decoder="RELU3"), "decodes relu3_1 features, but a relu4_1 decoder"),
    (dict(method="wct", levels="6"), "--levels takes numbers 1-5"),
    (dict(method="wct", levels="4,x"), "--levels takes numbers 1-5"),
    (dict(method="style-swap", patch_size=0), "--patch-size must be at least 1"),
    (dict(method="style-swap", invert="inverse"), "--invert must be one of decoder, optimize"),
    (dict(method="style-swap", patch_size=15), "too small for 15x15 patches"),
])
def test_bad_parameters_are_clear_errors(params, pattern, models, content, style, monkeypatch):
    monkeypatch.setenv("RESTYLE_MODELS", str(models))
    if params.get("decoder") == "RELU3":
        params = dict(params, decoder=dec_file(models, "relu3_1"))
    with pytest.raises(RestyleError, match=pattern):
        restyle.transfer(content, style, size=SIZE, **params)


def test_methods_listing_shows_the_one_pass_methods(capsys):
    code, out, _ = run_cli(["methods"], capsys)
    assert code == 0
    for name in ("adain", "wct", "style-swap"):
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert "model-optimization" in line and "transfer" in line
    for flag in ("--strength", "--decoder", "--style-size", "--levels", "--decoder-dir",
                 "--patch-size", "--invert"):
        assert flag in out
