"""Deep Dream: the chosen layers and channels really are amplified; bad input is a clear error."""

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle import imaging
from restyle.backbone import get_vgg
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.methods.dream import octave_sizes, parse_dream_layers
from restyle.optimize import Stop

FAST = dict(size=64, octaves=2, iterations=8, precision="fp32")


def activations(img, layer="relu4_3") -> torch.Tensor:
    """Per-channel mean activation of ``layer`` for a PIL image."""
    with torch.no_grad():
        f = get_vgg()(imaging.to_tensor(imaging.load_image(img)), [layer])[layer]
    return f.mean((0, 2, 3))


def small(photo, size=64) -> Image.Image:
    img = imaging.load_image(photo)
    return imaging.resize(img, imaging.fit_size(*img.size, size))


def test_parse_layers_with_channels():
    assert parse_dream_layers("relu4_3") == {"relu4_3": None}
    assert parse_dream_layers("relu3_3, relu4_3:87,12") == {"relu3_3": None, "relu4_3": [12, 87]}
    assert parse_dream_layers("relu4_3:5,relu5_1:1,2") == {"relu4_3": [5], "relu5_1": [1, 2]}
    with pytest.raises(RestyleError, match="must follow a layer with channels"):
        parse_dream_layers("relu4_3,12")
    with pytest.raises(RestyleError, match="not a layer name"):
        parse_dream_layers("relu4_3:12,big")
    with pytest.raises(RestyleError, match="at least one layer"):
        parse_dream_layers(" , ")


def test_octaves_go_from_small_to_full_size():
    sizes = octave_sizes(384, 512, 4, 1.4)
    assert sizes[-1] == (384, 512) and len(sizes) == 4
    assert all(a[0] < b[0] for a, b in zip(sizes, sizes[1:]))
    assert len(octave_sizes(48, 64, 6, 2.0)) == 1  # no octave below 32 px


def test_layer_activation_rises_and_output_stays_valid(photo):
    out = restyle.dream(photo, **FAST, layers="relu4_3")
    start = small(photo)
    assert out.size == start.size == (64, 64)
    arr = np.asarray(out, float)
    assert arr.min() >= 0 and arr.max() <= 255
    before, after = activations(start).mean(), activations(out).mean()
    assert after > 1.5 * before, (float(before), float(after))
    # it is a dream of the photo, not a new picture: the layout survives
    diff = np.abs(arr - np.asarray(start, float)).mean()
    assert 3 < diff < 60


def test_non_square_size_is_kept(tmp_path):
    from skimage import data
    img = Image.fromarray(data.chelsea())  # 451 x 300
    out = restyle.dream(img, size=72, octaves=2, iterations=2)
    assert out.size == imaging.fit_size(451, 300, 72)


def test_channel_selection_raises_that_channel_most(photo):
    start = small(photo)
    base = activations(start)
    channel = int(torch.argsort(base, descending=True)[20])  # an active, unremarkable unit
    out = restyle.dream(photo, **FAST, layers=f"relu4_3:{channel}")
    gain = activations(out) - base
    others = torch.cat([gain[:channel], gain[channel + 1:]])
    assert gain[channel] > 2 * base[channel]
    # dreaming the whole layer raises this unit about 6x the average; targeting it, ~20x
    assert gain[channel] > 10 * others.mean()
    assert int((others > gain[channel]).sum()) == 0  # the largest gain of all 512


def test_seed_reproducible_and_jitter_matters(photo):
    kw = dict(FAST, iterations=3)
    a = np.asarray(restyle.dream(photo, **kw, seed=1))
    b = np.asarray(restyle.dream(photo, **kw, seed=1))
    c = np.asarray(restyle.dream(photo, **kw, seed=2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_stop_keeps_full_size(photo):
    steps = []

    def stop_after_three(p):
        steps.append(p.step)
        if p.step == 3:
            raise Stop

    out = restyle.dream(photo, **FAST, callbacks=[stop_after_three])
    assert steps == [1, 2, 3] and out.size == (64, 64)


def test_bad_layers_and_channels_are_clear_errors(photo):
    with pytest.raises(RestyleError, match="unknown vgg16 layer"):
        restyle.dream(photo, size=32, iterations=1, layers="relu9_9")
    with pytest.raises(RestyleError, match="channels 0-511; 600 is out of range"):
        restyle.dream(photo, size=32, iterations=1, layers="relu4_3:600")
    with pytest.raises(RestyleError, match="--octave-scale must be at least"):
        restyle.dream(photo, octave_scale=1.0)
    with pytest.raises(RestyleError, match="use restyle.dream"):
        restyle.transfer(photo, photo, method="deepdream")


def test_cli_dream_writes_output(photo, tmp_path, capsys):
    out = tmp_path / "dream.png"
    code = main(["dream", str(photo), "-o", str(out), "--size", "48", "--octaves", "2",
                 "--iterations", "2", "--layers", "relu3_3:5,9", "-q"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "wrote" in stdout and Image.open(out).size == (48, 48)


@pytest.mark.parametrize("argv,pattern", [
    (["dream", "{photo}", "-o", "{out}", "--layers", "relu4_3:zz"], "channels are whole numbers"),
    (["dream", "{photo}", "-o", "{out}", "--layers", "fc7"], "unknown vgg16 layer"),
    (["dream", "{photo}", "-o", "{out}", "--method", "gatys"], "use restyle transfer"),
    (["transfer", "{photo}", "{photo}", "-o", "{out}", "--method", "deepdream"],
     "is a dream method; use restyle dream"),
    (["texture", "{photo}", "-o", "{out}", "--method", "deepdream"], "use restyle dream"),
])
def test_cli_errors_are_one_line(argv, pattern, photo, tmp_path, capsys):
    args = [a.format(photo=photo, out=tmp_path / "o.png") for a in argv]
    code = main(args + ["--size", "32", "-q"])
    _, err = capsys.readouterr()
    assert code == 2
    assert pattern in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()
