import numpy as np
import pytest
import torch
from PIL import Image

from restyle import imaging
from restyle.errors import RestyleError


def test_missing_folder_nonimage_and_truncated_files(tmp_path):
    with pytest.raises(RestyleError, match="not found"):
        imaging.load_image(tmp_path / "nope.jpg")
    with pytest.raises(RestyleError, match="is a folder"):
        imaging.load_image(tmp_path)
    text = tmp_path / "notes.jpg"
    text.write_text("hello, I am not a picture")
    with pytest.raises(RestyleError, match="not an image file"):
        imaging.load_image(text)
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(good)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(RestyleError, match="damaged or truncated"):
        imaging.load_image(cut)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (400, 300)).save(path)
    monkeypatch.setattr(imaging, "MAX_PIXELS", 100_000)
    with pytest.raises(RestyleError, match="too large to decode safely"):
        imaging.load_image(path)


def test_modes_are_converted_to_rgb(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 200
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(cmyk)
    img = imaging.load_image(cmyk)
    assert img.mode == "RGB" and img.size == (12, 10)
    r, g, b = np.asarray(img, float).mean((0, 1))
    assert r > 150 and g < 60 and b < 60

    sixteen = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535 // 2, np.uint16)).save(sixteen)
    img = imaging.load_image(sixteen)
    assert img.mode == "RGB" and abs(np.asarray(img).mean() - 127.5) < 2

    gray = tmp_path / "gray.png"
    Image.new("L", (5, 5), 77).save(gray)
    assert np.asarray(imaging.load_image(gray))[0, 0].tolist() == [77, 77, 77]

    pal = tmp_path / "pal.png"
    p = Image.new("P", (4, 4), 0)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.info["transparency"] = 0
    p.putpixel((1, 1), 1)
    p.save(pal, transparency=0)
    arr = np.asarray(imaging.load_image(pal))
    assert arr[0, 0].tolist() == [255, 255, 255]  # transparent -> white
    assert arr[1, 1].tolist() == [255, 0, 0]

    alpha = tmp_path / "alpha.png"
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 2] = 255
    a[..., 3] = 128
    Image.fromarray(a, "RGBA").save(alpha)
    px = np.asarray(imaging.load_image(alpha))[0, 0]
    assert 120 < px[0] < 135 and px[2] == 255  # half-transparent blue over white


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)  # landscape, red on the left half
    arr[:, :20, 0] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes())
    out = imaging.load_image(path)
    assert out.size == (20, 40)  # now portrait
    top = np.asarray(out, float)[:10, :, 0].mean()
    bottom = np.asarray(out, float)[-10:, :, 0].mean()
    assert top > 200 and bottom < 50


def test_arrays_and_tensors_are_accepted():
    f = np.random.default_rng(1).random((6, 7, 3))
    assert imaging.load_image(f).size == (7, 6)
    t = torch.rand(1, 3, 5, 9)
    assert imaging.load_image(t).size == (9, 5)
    with pytest.raises(RestyleError):
        imaging.load_image(np.zeros((2, 3, 5, 5)))
    with pytest.raises(RestyleError, match="expected a file path"):
        imaging.load_image(42)


def test_output_path_checks_and_atomic_save(tmp_path):
    with pytest.raises(RestyleError, match="does not exist"):
        imaging.check_output_path(tmp_path / "no" / "such" / "out.png")
    with pytest.raises(RestyleError, match="unknown image extension"):
        imaging.check_output_path(tmp_path / "out.xyz")
    existing = tmp_path / "keep.png"
    existing.write_bytes(b"precious")
    with pytest.raises(RestyleError, match="already exists"):
        imaging.check_output_path(existing)
    imaging.save_image(torch.rand(1, 3, 8, 8), tmp_path / "out.png")
    assert Image.open(tmp_path / "out.png").size == (8, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png", "out.png"]


def test_fit_size_and_resize_tensor_wrap():
    assert imaging.fit_size(1024, 768, 512) == (512, 384)
    t = torch.rand(1, 3, 16, 16)
    assert imaging.resize_tensor(t, (32, 24)).shape[-2:] == (32, 24)
    # a periodic image stays periodic when resized with wrap
    x = torch.linspace(0, 2 * np.pi, 33)[:-1]
    periodic = (0.5 + 0.4 * torch.sin(x)).view(1, 1, 1, 32).expand(1, 3, 8, 32).contiguous()
    big = imaging.resize_tensor(periodic, (8, 64), wrap=True)
    assert float((big[..., 0] - big[..., -1]).abs().max()) < 0.05


def test_linear_color_transfer_matches_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    src = torch.rand(1, 3, 32, 32, generator=g) * 0.5
    ref = torch.rand(1, 3, 32, 32, generator=g) * 0.3 + torch.tensor([0.6, 0.2, 0.1]).view(1, 3, 1, 1)
    out = imaging.linear_color_transfer(src, ref)
    assert torch.allclose(out.mean((2, 3)), ref.mean((2, 3)), atol=0.01)
    cov = lambda t: torch.cov(t[0].reshape(3, -1))
    assert torch.allclose(cov(out), cov(ref), atol=2e-3)


def test_histogram_match_takes_reference_values():
    src = torch.rand(1, 3, 16, 16)
    ref = torch.rand(1, 3, 16, 16) ** 3
    out = imaging.histogram_match(src, ref)
    for c in range(3):
        assert torch.allclose(out[0, c].flatten().sort().values, ref[0, c].flatten().sort().values,
                              atol=1e-5)
    # ordering of the source is kept
    assert torch.equal(out[0, 0].flatten().argsort(), src[0, 0].flatten().argsort())


def test_luminance_transfer_keeps_chroma():
    content = torch.rand(1, 3, 8, 8)
    styled = torch.rand(1, 3, 8, 8)
    out = imaging.combine_luminance(styled, content)
    iq = lambda t: imaging.rgb_to_yiq(t)[:, 1:]
    inside = ((out > 0.001) & (out < 0.999)).all(1, keepdim=True)  # not clipped
    assert inside.float().mean() > 0.3
    assert torch.allclose(imaging.luminance(out)[inside], imaging.luminance(styled)[inside],
                          atol=1e-4)
    m = inside.expand(-1, 2, -1, -1)
    assert torch.allclose(iq(out)[m], iq(content)[m], atol=1e-4)
