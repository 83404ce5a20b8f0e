import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def shared(*parts) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not available: {path}")
    return path


@pytest.fixture(scope="session")
def vgg():
    from restyle.backbone import get_vgg
    return get_vgg()


@pytest.fixture
def photo(tmp_path) -> Path:
    """A small natural photo (scikit-image's astronaut) saved as PNG."""
    from skimage import data
    path = tmp_path / "photo.png"
    Image.fromarray(data.astronaut()).resize((96, 96), Image.LANCZOS).save(path)
    return path


@pytest.fixture
def style_path() -> Path:
    return ROOT / "restyle" / "assets" / "demo_style.jpg"


def stripes(size=64, period=8, horizontal=False) -> np.ndarray:
    """A high-contrast stripe pattern as an RGB uint8 array."""
    yy, xx = np.mgrid[:size, :size]
    v = ((yy if horizontal else xx) // (period // 2)) % 2
    arr = np.zeros((size, size, 3), np.uint8)
    arr[v == 1] = (230, 40, 30)
    arr[v == 0] = (20, 30, 200)
    return arr


def seam_step(img) -> float:
    """The step across an image's wrap-around border against the steps beside it.

    Per axis: the mean absolute difference between the last and the first row (column),
    over the median of those across the two borders on either side of it inside the
    image; the two axes summed. An image that tiles continues across the wrap-around
    border as it does anywhere else, so the step there is like its neighbours' (~1, also
    where a mortar line of a brick texture runs along the border and every step near it
    is large); an image that does not tile jumps there (64 px crops of a brick wall:
    mostly 2-7). One border per axis is one sample: keep the bound at 2, not near 1.
    """
    a = np.asarray(img, float)
    seam = beside = 0.0
    for b in (a, np.swapaxes(a, 0, 1)):
        step = np.abs(np.roll(b, -1, 0) - b).reshape(len(b), -1).mean(1)  # [-1]: the wrap
        seam += step[-1]
        beside += np.median(np.r_[step[-3:-1], step[:2]])
    return seam / beside


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory):
    """Six small photos from scikit-image (no shared data needed)."""
    from skimage import data
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry"):
        img = Image.fromarray(getattr(data, name)())
        img.thumbnail((96, 96), Image.LANCZOS)
        img.save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def style_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("styles")
    Image.fromarray(stripes(64, period=8)).save(folder / "stripes.png")
    Image.fromarray(stripes(80, period=16, horizontal=True)).save(folder / "bands.png")
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    patch search is many small tensor operations, and on a busy 2-core machine a second
    thread waits more than it works (9x slower measured under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def random_decoder(level: str, seed: int = 0):
    """A tiny Kaiming-initialised decoder for ``level`` whose outputs are neither flat nor
    saturated: features scaled by their RMS on a photo, and the last layer set so that a
    reconstruction has mean ~0.5 and std ~0.2 (comparisons on flat or clipped outputs
    would mean nothing)."""
    from skimage import data

    from restyle import imaging
    from restyle.backbone import get_vgg
    from restyle.nets import Decoder
    photo = imaging.to_tensor(Image.fromarray(data.astronaut()).resize((64, 64)))
    f = get_vgg()(photo, [level])[level]
    torch.manual_seed(seed)
    dec = Decoder(level, width_mult=0.125, feature_scale=float(f.pow(2).mean().sqrt()))
    convs = [m for m in dec.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            conv.bias.zero_()
        convs[-1].weight.mul_(0.2 / dec(f).std())
        convs[-1].bias.fill_(0.5)
    return dec
