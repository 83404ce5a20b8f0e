"""Video: flow warping, Ruder's consistency check, temporal consistency for one-pass and
optimization methods, resume, audio passthrough, GIF and frame-folder outputs, bad inputs."""

import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from restyle import imaging  # noqa: E402
from restyle.cli import main  # noqa: E402
from restyle.errors import RestyleError  # noqa: E402
from restyle.evaluate.metrics import gram_distance, temporal_warping_error  # noqa: E402
from restyle.video import (FRAME_NAME, Carry, TemporalGuide, blend_carry, consistency,  # noqa: E402
                           iter_frames, optical_flow, probe, stylize_video, warp, work_dir)

from .conftest import random_decoder, stripes  # noqa: E402

FPS = 10
W, H = 64, 48


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture (uint8 RGB) with detail at several scales: flow can lock on."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3))
    for cell in (4, 8, 16):
        small = rng.random((h // cell + 2, w // cell + 2, 3))
        img += np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize(
            ((w // cell + 2) * cell, (h // cell + 2) * cell), Image.BICUBIC))[:h, :w] / 255.0
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def moving_frames(n: int, step: int = 2) -> list[np.ndarray]:
    """Frames of a camera panning right over the astronaut photo by ``step`` px per frame."""
    from skimage import data
    big = np.asarray(Image.fromarray(data.astronaut()).resize((160, 160), Image.LANCZOS))
    return [big[40:40 + H, 20 + step * i:20 + step * i + W] for i in range(n)]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = FPS, audio: bool = True) -> None:
    """An H.264 clip of ``frames`` with (optionally) a 440 Hz AAC sine of the same length."""
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps, options={"crf": "10"})
        vs.width, vs.height, vs.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        a_s = c.add_stream("aac", rate=44100) if audio else None
        for i, arr in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            c.mux(vs.encode(f))
        c.mux(vs.encode())
        if a_s is not None:
            n = round(44100 * len(frames) / fps)
            t = np.arange(n) / 44100
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            af.sample_rate, af.pts = 44100, 0
            c.mux(a_s.encode(af))
            c.mux(a_s.encode())


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_clip(path, moving_frames(4))
    return path


@pytest.fixture(scope="module")
def frame_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    for i, arr in enumerate(moving_frames(4)):
        Image.fromarray(arr).save(folder / f"f{i + 1}.png")  # natural order: f1 .. f4
    return folder


@pytest.fixture(scope="module")
def style_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("style") / "stripes.png"
    Image.fromarray(stripes(48, period=8)).save(path)
    return path


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory) -> Path:
    """A tiny random relu4_1 decoder whose outputs are neither flat nor saturated."""
    path = tmp_path_factory.mktemp("models") / "decoder_relu4_1.safetensors"
    random_decoder("relu4_1").save(path, note="random, for tests")
    return path


def png_frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame_*.png"))]


# ----------------------------------------------------------------------------- flow

def test_shifted_image_warps_back_onto_itself():
    big = texture(96, 96)
    a = big[10:74, 10:74]  # a(x) = big(x + 10)
    b = big[8:72, 7:71]  # b(x) = big(x + (7, 8)) = a(x + (-3, -2))
    flow = optical_flow(b, a)
    inner = (slice(8, -8), slice(8, -8))
    assert np.allclose(np.median(flow[inner], axis=(0, 1)), (-3, -2), atol=0.2)
    ta, tb = imaging.to_tensor(Image.fromarray(a)), imaging.to_tensor(Image.fromarray(b))
    back = warp(ta, flow)
    err = (back - tb).abs()[..., 8:-8, 8:-8].mean()
    assert err < 0.02 < (ta - tb).abs()[..., 8:-8, 8:-8].mean()
    # an exact integer flow is an exact shift
    shift = np.zeros((64, 64, 2), np.float32)
    shift[..., 0], shift[..., 1] = -3, -2
    assert torch.allclose(warp(ta, shift)[..., 2:, 3:], tb[..., 2:, 3:], atol=1e-5)


def square_frames(x0: int, x1: int):
    """A textured square moving right from x0 to x1 over a static textured background."""
    bg, fg = texture(64, 96, seed=1), texture(64, 96, seed=2)
    frames = []
    for x in (x0, x1):
        f = bg.copy()
        f[20:40, x:x + 20] = fg[20:40, 40:60]
        frames.append(f)
    return frames


def test_consistency_is_zero_at_a_disocclusion():
    # exact flows: the square moves 6 px right; in frame 1 the strip x = 16..21 was
    # covered by the square in frame 0 (a disocclusion)
    fw, bw = np.zeros((64, 96, 2), np.float32), np.zeros((64, 96, 2), np.float32)
    fw[20:40, 16:36, 0] = 6  # frame 0 -> 1
    bw[20:40, 22:42, 0] = -6  # frame 1 -> 0
    c = consistency(fw, bw)
    assert c.shape == (64, 96) and set(np.unique(c)) <= {0.0, 1.0}
    assert c[22:38, 16:22].max() == 0  # disoccluded
    assert c[22:38, 25:39].min() == 1  # the square's inside moves consistently
    assert c[:15].min() == 1 and c[45:].min() == 1  # still background
    assert c[19:21, 22:42].max() == 0  # motion boundary at the square's top edge
    # and with DIS flow on the rendered frames
    f0, f1 = square_frames(16, 22)
    dfw, dbw = optical_flow(f0, f1), optical_flow(f1, f0)
    c = consistency(dfw, dbw)
    assert c[24:36, 16:22].mean() < 0.3
    assert c[:12, 8:88].mean() > 0.9 and c[26:34, 27:37].mean() > 0.9


def test_blend_keeps_new_output_where_untrusted_and_its_contrast_where_trusted():
    g = torch.Generator().manual_seed(0)
    new = torch.rand(1, 3, 48, 64, generator=g)
    old = torch.rand(1, 3, 48, 64, generator=g)
    weight = torch.ones(1, 1, 48, 64)
    weight[..., :, :32] = 0
    out = blend_carry(new, Carry(old, weight), 0.5)
    assert torch.allclose(out[..., :, :24], new[..., :, :24], atol=1e-5)  # untrusted: new
    right = out[..., 8:-8, 40:-8]
    plain = (0.5 * old + 0.5 * new)[..., 8:-8, 40:-8]
    # moved towards the previous output...
    assert (right - old[..., 8:-8, 40:-8]).abs().mean() < 0.8 * \
        (new - old)[..., 8:-8, 40:-8].abs().mean()
    # ...without the plain average's loss of contrast (1/sqrt(2) for unrelated textures)
    assert right.std() > 0.85 * new[..., 8:-8, 40:-8].std() > 1.15 * plain.std()
    same = blend_carry(new, Carry(new.clone(), torch.ones(1, 1, 48, 64)), 0.7)
    assert torch.allclose(same, new, atol=1e-4)  # agreeing outputs are left alone


def test_temporal_guide_steers_the_pyramid():
    warped = torch.full((1, 3, 32, 48), 0.8)
    weight = torch.zeros(1, 1, 32, 48)
    weight[..., :, 24:] = 1
    guide = TemporalGuide(Carry(warped, weight), weight=100.0)
    assert guide.schedule([(16, 24), (32, 48)], [40, 20]) == ([(32, 48)], [10]) and guide.used
    start = guide.init((32, 48), torch.zeros(1, 3, 32, 48))
    assert start[..., :, :20].max() < 0.01 and start[..., :, 28:].min() > 0.79
    term = guide.terms((32, 48))
    moved = warped.clone()
    moved[..., :, :24] = 0.0  # differs only where the weight is 0: no temporal loss
    assert term.evaluate({}, moved)[0].item() == pytest.approx(0.0, abs=1e-9)
    moved[..., :, 24:] = 0.5  # differs by 0.3 where trusted (half the pixels)
    assert term.evaluate({}, moved)[0].item() == pytest.approx(100 * 0.09 / 2, rel=1e-4)


# ----------------------------------------------------------------------------- methods

def warping_error(folder: Path, frames: list[np.ndarray]) -> float:
    return temporal_warping_error(png_frames(folder), frames, width=W)["mean"]


def test_optimization_method_temporal_cuts_flicker(frame_dir, style_file, tmp_path):
    frames = moving_frames(4)
    steps = []
    kw = dict(method="gatys", size=48, iterations=8, min_size=0, strength=0.8)
    off = stylize_video(frame_dir, style_file, tmp_path / "off", temporal="off", **kw)
    on = stylize_video(frame_dir, style_file, tmp_path / "on", callbacks=[
        lambda p: steps.append(p.steps)], **kw)
    assert off.frames == on.frames == 4 and on.size == (48, 36)
    assert set(steps) == {8, 4}  # first frame: full schedule; then half, from the warped one
    e_off, e_on = warping_error(tmp_path / "off", frames), warping_error(tmp_path / "on", frames)
    assert e_on < e_off / 3, (e_on, e_off)
    style = imaging.to_tensor(Image.open(style_file).convert("RGB"))
    d_off = np.mean([gram_distance(imaging.to_tensor(Image.fromarray(f)), style)["mean"]
                     for f in png_frames(tmp_path / "off")[1:]])
    d_on = np.mean([gram_distance(imaging.to_tensor(Image.fromarray(f)), style)["mean"]
                    for f in png_frames(tmp_path / "on")[1:]])
    assert d_on < 1.3 * d_off, (d_on, d_off)


def test_one_pass_method_temporal_blend(clip, style_file, decoder_file, tmp_path):
    frames = [np.asarray(f) for f in iter_frames(probe(clip))]
    kw = dict(method="adain", size=W, decoder=str(decoder_file))
    stylize_video(clip, style_file, tmp_path / "off", temporal="off", **kw)
    stylize_video(clip, style_file, tmp_path / "on", blend=0.8, **kw)
    e_off, e_on = warping_error(tmp_path / "off", frames), warping_error(tmp_path / "on", frames)
    assert e_on < e_off / 2, (e_on, e_off)
    assert np.array_equal(png_frames(tmp_path / "off")[0], png_frames(tmp_path / "on")[0])


# ----------------------------------------------------------------------------- outputs

def audio_packets(path: Path) -> tuple[str, list[tuple[int, bytes]], float]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        packets = [(p.pts, bytes(p)) for p in c.demux(s) if p.size]
        return s.codec_context.name, packets, float(s.duration * s.time_base)


def test_audio_is_copied_not_reencoded(clip, style_file, decoder_file, tmp_path):
    out = tmp_path / "out.mp4"
    r = stylize_video(clip, style_file, out, method="adain", size=32,
                      decoder=str(decoder_file))
    assert r.frames == 4 and r.size == (32, 24) and r.audio == "audio aac copied"
    codec, packets, duration = audio_packets(clip)
    codec2, packets2, duration2 = audio_packets(out)
    assert codec2 == codec == "aac"
    assert packets2 == packets  # the same bytes: remuxed, not re-encoded
    assert duration2 == pytest.approx(duration, abs=0.03)
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.average_rate == FPS and (v.width, v.height) == (32, 24)
        assert sum(1 for _ in c.decode(v)) == 4
    assert not work_dir(out).exists()
    # --frames cuts the audio to match
    short = stylize_video(clip, style_file, tmp_path / "short.mp4", method="adain", size=32,
                          decoder=str(decoder_file), frames=2)
    assert short.frames == 2
    assert audio_packets(tmp_path / "short.mp4")[2] < 0.2 + 0.05


def test_gif_and_frame_folder_outputs(frame_dir, style_file, decoder_file, tmp_path):
    kw = dict(method="adain", size=32, decoder=str(decoder_file), fps=5)
    r = stylize_video(frame_dir, style_file, tmp_path / "out.gif", **kw)
    assert r.fps == 5 and r.audio is None
    with Image.open(tmp_path / "out.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (32, 24)
        assert gif.info["duration"] == 200
    stylize_video(frame_dir, style_file, tmp_path / "frames", **kw)
    files = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert files == [f"frame_00000{i}.png" for i in range(1, 5)]
    assert Image.open(tmp_path / "frames" / files[0]).size == (32, 24)
    with pytest.raises(RestyleError, match="already exists"):
        stylize_video(frame_dir, style_file, tmp_path / "frames", **kw)
    stylize_video(frame_dir, style_file, tmp_path / "frames", overwrite=True, **kw)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(RestyleError, match="other files"):
        stylize_video(frame_dir, style_file, tmp_path / "mine", overwrite=True, **kw)
    assert (tmp_path / "mine" / "notes.txt").exists()


def test_resume_continues_after_an_interruption(clip, style_file, decoder_file, tmp_path):
    kw = dict(method="adain", size=32, decoder=str(decoder_file))
    full = tmp_path / "full"
    stylize_video(clip, style_file, full, **kw)

    def stop_after_two(p):
        if p.frame == 2:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        stylize_video(clip, style_file, out, progress=stop_after_two, **kw)
    assert not out.exists()
    assert len(list((work_dir(out) / "frames").glob("frame_*.png"))) == 2
    with pytest.raises(RestyleError, match="--resume"):
        stylize_video(clip, style_file, out, **kw)
    with pytest.raises(RestyleError, match="other settings"):
        stylize_video(clip, style_file, out, resume=True, **dict(kw, blend=0.3))
    seen = []
    r = stylize_video(clip, style_file, out, resume=True, progress=seen.append, **kw)
    assert r.resumed == 2 and [p.frame for p in seen] == [3, 4] and seen[-1].new == 2
    assert not work_dir(out).exists()
    # the continuation carried the temporal state over: the same frames as in one go
    assert all(np.array_equal(a, b) for a, b in zip(png_frames(out), png_frames(full)))


# ----------------------------------------------------------------------------- command line

def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_video_and_evaluate(clip, style_file, decoder_file, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, stdout, err = run_cli(["video", clip, style_file, "-o", out, "--method", "adain",
                                 "--decoder", decoder_file, "--size", 32, "-q"], capsys)
    assert code == 0, err
    assert "wrote" in stdout and "4 frames" in stdout and "audio aac copied" in stdout
    code, stdout, err = run_cli(["evaluate", "--video", out, "--input", clip, "--style",
                                 style_file, "--style-every", 4, "--width", 32], capsys)
    assert code == 0, err
    line = stdout.strip().splitlines()[-1].split()
    assert line[0] == str(out) and float(line[1]) >= 0 and 0 < float(line[2]) <= 1
    folder = tmp_path / "frames"
    code, stdout, err = run_cli(["video", clip, style_file, "-o", folder, "--method", "adain",
                                 "--decoder", decoder_file, "--size", 32, "--frames", 2, "-q",
                                 "--json"], capsys)
    assert code == 0, err
    record = json.loads(stdout)
    assert record["output"] == str(folder.resolve()) and record["frames"] == 2
    assert record["method"] == "adain" and record["params"]["size"] == 32
    assert record["seconds"] > 0 and len(list(folder.glob("*.png"))) == 2


def test_warping_error_separates_steady_from_flickering_video():
    frames = moving_frames(4)
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in frames]
    steady = temporal_warping_error(frames, frames, width=W)
    flicker = temporal_warping_error(noisy, frames, width=W)
    assert steady["mean"] < 1.0 and flicker["mean"] > 5 * steady["mean"]
    assert len(steady["pairs"]) == 3


def make_bad_inputs(folder: Path) -> dict[str, Path]:
    bad = {}
    bad["not a video"] = folder / "notes.mp4"
    bad["not a video"].write_text("this is not a video")
    bad["only audio"] = folder / "sound.m4a"
    with av.open(str(bad["only audio"]), "w") as c:
        s = c.add_stream("aac", rate=44100)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 4410), np.float32), format="fltp",
                                        layout="mono")
        fr.sample_rate, fr.pts = 44100, 0
        c.mux(s.encode(fr))
        c.mux(s.encode())
    bad["no frames"] = folder / "empty"
    bad["no frames"].mkdir()
    bad["no frames file"] = folder / "empty.mkv"
    with av.open(str(bad["no frames file"]), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    bad["cannot be decoded"] = folder / "garbage.mkv"
    with av.open(str(bad["cannot be decoded"]), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(3):
            p = av.Packet(rng.integers(0, 255, 2000, dtype=np.uint8).tobytes())
            p.stream, p.pts, p.dts, p.time_base = s, i, i, Fraction(1, 10)
            c.mux(p)
    return bad


def test_bad_inputs_fail_with_one_line_and_leave_nothing(clip, style_file, decoder_file,
                                                         tmp_path, capsys):
    bad = make_bad_inputs(tmp_path)
    base = ["--method", "adain", "--decoder", decoder_file, "--size", 32, "-q"]
    expect = {"not a video": "not a video file", "only audio": "only audio",
              "no frames": "no frames", "no frames file": "no frames",
              "cannot be decoded": "cannot be decoded"}
    for key, message in expect.items():
        out = tmp_path / f"out-{key.replace(' ', '_')}.mp4"
        code, _, err = run_cli(["video", bad[key], style_file, "-o", out, *base], capsys)
        assert code == 2 and message in err, (key, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("restyle: error:")
        assert not out.exists() and not work_dir(out).exists()
    out = tmp_path / "o.mp4"
    for args, message in [([clip, bad["not a video"]], "style image"),
                          ([tmp_path / "missing.mp4", style_file], "not found"),
                          ([clip, style_file, "-o", tmp_path / "o.png"], "cannot write"),
                          ([clip, style_file, "--frames", -1], "--frames")]:
        argv = ["video", *args] + ([] if "-o" in args else ["-o", out]) + base
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.glob("o.*")) == [] and not work_dir(out).exists()


def test_missing_pyav_names_the_install_command(clip, style_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    code, _, err = run_cli(["video", clip, style_file, "-o", tmp_path / "o.mp4"], capsys)
    assert code == 2 and "pip install 'restyle[video]'" in err


def test_long_output_name_and_output_onto_input_fail_before_any_frame(clip, frame_dir,
                                                                     style_file, decoder_file,
                                                                     tmp_path, capsys):
    """A name whose work folder (NAME.restyle-work) would be too long, and an output that is
    the input (a file, or a frame folder onto itself): one line, exit 2, nothing written."""
    base = ["--method", "adain", "--decoder", decoder_file, "--size", 32, "-q"]
    out = tmp_path / ("v" * 245 + ".mp4")
    code, _, err = run_cli(["video", clip, style_file, "-o", out, *base], capsys)
    assert code == 2 and "too long" in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []
    own = tmp_path / "own"  # frames named like restyle's own output, which it may replace
    own.mkdir()
    for i, f in enumerate(sorted(frame_dir.iterdir()), 1):
        (own / FRAME_NAME.format(i)).write_bytes(f.read_bytes())
    before = {p.name: p.read_bytes() for p in own.iterdir()}
    code, _, err = run_cli(["video", own, style_file, "-o", own, "--overwrite", *base], capsys)
    assert code == 2 and "would replace the input" in err, err
    assert {p.name: p.read_bytes() for p in own.iterdir()} == before
