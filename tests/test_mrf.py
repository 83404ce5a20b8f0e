"""MRF (CNNMRF) patch style, semantic maps and the neural doodle: the maths and the CLI."""

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle import imaging
from restyle.backbone import get_vgg
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.losses import mrf_loss
from restyle.methods.mrf import rotate_crop, style_copies
from restyle.patches import extract_patches, grid_shape, ncc_match, normalize_patches
from restyle.semantic import pair_maps

from .conftest import shared, stripes

FAST = dict(size=64, iterations=15, min_size=0, rotations=0, scales=0, precision="fp32")


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- matching

def test_ncc_match_finds_a_planted_patch():
    g = torch.Generator().manual_seed(0)
    style = torch.randn(1, 6, 12, 12, generator=g)
    patches = extract_patches(style, 3)  # (100, 54)
    assert patches.shape == (100, 54)
    # the query holds style patch (row 4, column 7) at its top-left, scaled by 5: NCC ignores
    # the scale of the query, and a scaled copy is still the best match
    query = torch.randn(1, 6, 5, 5, generator=g)
    query[..., :3, :3] = 5 * style[..., 4:7, 7:10]
    index, score = ncc_match(query, patches, 3)
    assert index.shape == (9,)
    assert int(index[0]) == 4 * 10 + 7
    assert float(score[0]) == pytest.approx(float(patches[47].norm()) * 5, rel=1e-4)
    # identical results with tiny chunks, bfloat16 products and pre-normalised patches
    assert torch.equal(ncc_match(query, patches, 3, max_chunk_bytes=1)[0], index)
    assert int(ncc_match(query, patches.bfloat16(), 3)[0][0]) == 47
    assert torch.equal(ncc_match(query, normalize_patches(patches), 3, normalized=True)[0], index)


def test_ncc_match_is_the_brute_force_argmax_on_a_strided_grid():
    g = torch.Generator().manual_seed(1)
    style, feat = torch.randn(1, 4, 9, 11, generator=g), torch.randn(1, 4, 10, 8, generator=g)
    patches = extract_patches(style, 3, stride=2)
    index, _ = ncc_match(feat, patches, 3, stride=2)
    hp, wp = grid_shape(10, 8, 3, 2)
    assert index.numel() == hp * wp == 4 * 3
    cols = torch.nn.functional.unfold(feat, 3, stride=2)[0].T  # (P, D)
    brute = (cols @ (patches / patches.norm(dim=1, keepdim=True)).T).argmax(1)
    assert torch.equal(index, brute)
    with pytest.raises(RestyleError, match="same layer"):
        ncc_match(feat[:, :3], patches, 3)


def test_mrf_loss_is_zero_on_style_patches_and_matches_the_patch_energy():
    g = torch.Generator().manual_seed(2)
    style = torch.randn(1, 5, 8, 8, generator=g)
    patches = extract_patches(style, 3)
    index, _ = ncc_match(style, patches, 3)
    assert float(mrf_loss(style, patches, index, 3)) < 1e-10  # every patch finds itself
    # for stride 1, the loss is sum_i |x_i - s_NN(i)|^2 up to a constant and the patch
    # counts: its gradient equals the count-normalised gradient of the patch energy
    x = torch.randn(1, 5, 8, 8, generator=g, requires_grad=True)
    index, _ = ncc_match(x.detach(), patches, 3)
    loss = mrf_loss(x, patches, index, 3)
    loss.backward()
    xp = torch.nn.functional.unfold(x.detach(), 3)[0]
    chosen = patches[index].T
    diff = torch.nn.functional.fold((xp - chosen).unsqueeze(0), (8, 8), 3)
    count = torch.nn.functional.fold(torch.ones(1, 9, 36), (8, 8), 3)
    target = torch.nn.functional.fold(chosen.unsqueeze(0), (8, 8), 3) / count
    expected = 2 * (diff / count) / target.pow(2).sum()
    assert torch.allclose(x.grad, expected, atol=1e-5)
    with pytest.raises(ValueError, match="gaps"):
        mrf_loss(x, patches, index, 3, stride=4)


def test_semantic_channels_restrict_matches_to_the_same_region():
    """Style: the left half is region 0, the right half region 1. The query is a copy of
    right-half patches but labelled region 0: with the map weight it must match left-half
    patches only; without it, it finds the planted right-half patches."""
    g = torch.Generator().manual_seed(3)
    c, h, w = 16, 10, 16
    style = torch.randn(1, c, h, w, generator=g)
    labels = torch.zeros(1, 2, h, w)
    labels[:, 0, :, : w // 2] = 1
    labels[:, 1, :, w // 2:] = 1
    query = style[..., 2:8, 10:16].clone()
    qlabels = torch.zeros(1, 2, 6, 6)
    qlabels[:, 0] = 1
    rms = float(style.pow(2).sum(1).mean().sqrt())
    plain = extract_patches(style, 3)
    columns = torch.arange(plain.shape[0]) % (w - 2)  # left column of each style patch

    def matched_columns(weight):
        bank = torch.cat([plain, extract_patches(labels * weight * rms, 3)], 1)
        q = torch.cat([query, qlabels * weight * rms], 1)
        index, _ = ncc_match(q, bank, 3)
        return columns[index]

    free = matched_columns(0.0)
    assert (free >= w // 2).all()  # the planted patches, in the right half
    guided = matched_columns(3.0)
    assert (guided + 2 < w // 2).all()  # whole patches from the left region only


# ----------------------------------------------------------------------------- maps

def test_pair_maps_groups_noisy_colours_and_names_missing_ones():
    rng = np.random.default_rng(0)
    style = np.zeros((40, 40, 3), np.uint8)
    style[:, 20:] = (255, 255, 255)
    style[:, 30:] = (0, 0, 255)
    target = np.zeros((30, 30, 3), np.uint8)
    target[15:] = (254, 254, 254)  # off by one: the same region as white
    target[3, 3] = target[20, 7] = (128, 128, 128)  # specks, too rare to be a region
    noisy = np.clip(style.astype(int) + rng.integers(-6, 7, style.shape), 0, 255).astype(np.uint8)
    pair = pair_maps(Image.fromarray(noisy), Image.fromarray(target))
    assert len(pair.palette) == 3  # black, white, blue; the specks join a region
    assert pair.style.shape == (40, 40) and pair.target.shape == (30, 30)
    black, white = pair.style[0, 0], pair.style[0, 25]
    assert (pair.target[:15] == black).mean() > 0.95 and (pair.target[15:] == white).mean() > 0.95
    onehot = pair.channels("target", (10, 10))
    assert onehot.shape == (1, 3, 10, 10) and torch.allclose(onehot.sum(1), torch.ones(1, 10, 10))
    # a target region the style map lacks is an error naming its colour
    target[:5] = (0, 255, 0)
    with pytest.raises(RestyleError, match="#00ff00") as e:
        pair_maps(Image.fromarray(style), Image.fromarray(target))
    assert "#0000ff" in str(e.value)  # and listing the style's own regions


def test_rotated_copies_have_no_empty_corners():
    flat = torch.full((1, 3, 40, 60), 0.5)
    rot = rotate_crop(flat, 0.3)
    assert rot.shape[-2] < 40 and rot.shape[-1] < 60
    assert torch.allclose(rot, torch.full_like(rot, 0.5), atol=1e-5)
    copies = style_copies(torch.rand(1, 3, 48, 48), torch.ones(1, 2, 48, 48), 1, 1)
    assert len(copies) == 9
    assert all(img.shape[-2:] == g.shape[-2:] for img, g in copies)


# ----------------------------------------------------------------------------- the method

def mrf_energy(img, style, layer="relu3_1"):
    """The MRF loss of an image against a style's patches (fresh nearest neighbours)."""
    vgg = get_vgg()
    f = vgg(imaging.to_tensor(imaging.load_image(img)), [layer])[layer]
    s = vgg(imaging.to_tensor(imaging.load_image(style)), [layer])[layer]
    patches = extract_patches(s, 3)
    index, _ = ncc_match(f, patches, 3)
    return float(mrf_loss(f, patches, index, 3))


def test_a_short_run_lowers_the_mrf_loss(photo):
    style = stripes(64, period=8)
    out = restyle.transfer(photo, style, method="mrf", **FAST)
    assert out.size == (64, 64)
    content = imaging.load_image(photo).resize((64, 64), Image.LANCZOS)
    assert mrf_energy(out, style) < 0.7 * mrf_energy(content, style)
    # more content weight keeps more of the photo
    kept = restyle.transfer(photo, style, method="mrf", **dict(FAST, content_weight=20.0))
    diff = lambda a: np.abs(np.asarray(a, float) - np.asarray(content, float)).mean()
    assert diff(kept) < diff(out)


def test_doodle_paints_each_region_from_the_matching_style_region(tmp_path):
    """The style's left half is red stripes (white in its map), the right half blue noise
    (black). The target map puts black on top and white below: the painted doodle must be
    blue on top and red below."""
    rng = np.random.default_rng(0)
    style = np.zeros((64, 128, 3), np.uint8)
    style[:, :64] = stripes(64, period=8)
    style[:, :64, 2] = 20  # red and dark stripes
    style[:, 64:] = 0
    style[:, 64:, 2] = rng.integers(120, 255, (64, 64))
    smap = np.zeros((64, 128, 3), np.uint8)
    smap[:, :64] = 255
    tmap = np.zeros((64, 64, 3), np.uint8)
    tmap[32:] = 255
    paths = {}
    for name, arr in (("style", style), ("smap", smap), ("tmap", tmap)):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(arr).save(paths[name])
    out = np.asarray(restyle.doodle(paths["style"], style_map=paths["smap"],
                                    target_map=paths["tmap"], **dict(FAST, iterations=25)),
                     float)
    top, bottom = out[4:28], out[36:60]
    assert top[..., 2].mean() > top[..., 0].mean() + 40  # blue on top
    assert bottom[..., 0].mean() > bottom[..., 2].mean() + 40  # red below


def test_mrf_errors_are_one_clear_line(photo, tmp_path):
    style = stripes(32)
    with pytest.raises(RestyleError, match="give --target-map too"):
        restyle.transfer(photo, style, method="mrf", style_map=str(photo), **FAST)
    with pytest.raises(RestyleError, match="file not found"):
        restyle.transfer(photo, style, method="mrf", style_map="nope.png", target_map="no.png")
    with pytest.raises(RestyleError, match="exactly one"):
        restyle.transfer(photo, [style, style], method="mrf", **FAST)
    with pytest.raises(RestyleError, match="gaps"):
        restyle.transfer(photo, style, method="mrf", **dict(FAST, stride=4))
    with pytest.raises(RestyleError, match="too small"):
        restyle.transfer(photo, style, method="mrf", **dict(FAST, size=32, patch_size=5))


def test_cli_doodle_and_mrf_transfer(tmp_path, photo, capsys):
    style = tmp_path / "style.png"
    Image.fromarray(stripes(64)).save(style)
    smap, tmap = tmp_path / "smap.png", tmp_path / "tmap.png"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(smap)
    Image.new("RGB", (48, 32), (250, 2, 1)).save(tmap)  # near enough to the same red
    fast = ["--iterations", "3", "--min-size", "0", "--rotations", "0", "--scales", "0", "-q"]
    out = tmp_path / "doodle.png"
    assert main(["doodle", str(style), "--style-map", str(smap), "--target-map", str(tmap),
                 "--size", "48", "-o", str(out), *fast]) == 0
    assert Image.open(out).size == (48, 32)  # the target map's shape at --size
    out2 = tmp_path / "mrf.png"
    assert main(["transfer", str(photo), str(style), "--method", "mrf", "--size", "64",
                 "-o", str(out2), *fast]) == 0
    assert Image.open(out2).size == (64, 64)
    capsys.readouterr()
    # errors: one line on stderr, exit code 2, nothing written
    bad = Image.new("RGB", (48, 32), (0, 0, 255))
    bad.save(tmap)
    assert main(["doodle", str(style), "--style-map", str(smap), "--target-map", str(tmap),
                 "-o", str(tmp_path / "x.png"), *fast]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "#0000ff" in err and "#ff0000" in err
    assert not (tmp_path / "x.png").exists()
    assert main(["doodle", str(style), "-o", str(tmp_path / "y.png"), *fast]) == 2
    assert "--style-map and --target-map" in capsys.readouterr().err


@pytest.mark.slow
def test_monet_doodle_on_shared_data():
    """The neural-doodle example: Monet's cliffs painted onto a coastline sketch. Each large
    region of the result (sky, cliffs, sea) takes the colour of its own region in the
    painting, not another's."""
    sem = shared("semantic")
    out = restyle.doodle(sem / "monet.jpg", style_map=sem / "monet_sem.png",
                         target_map=sem / "coastline_sem.png", size=192, iterations=40)
    pair = pair_maps(Image.open(sem / "monet_sem.png"), Image.open(sem / "coastline_sem.png"))
    painting = np.asarray(Image.open(sem / "monet.jpg").convert("RGB"), float)
    arr = np.asarray(out, float)
    labels = np.asarray(Image.fromarray(pair.target.astype(np.uint8)).resize(out.size,
                                                                             Image.NEAREST))
    style_means = np.stack([painting[pair.style == i].mean(0) for i in range(len(pair.palette))])
    for i in range(len(pair.palette)):
        if (labels == i).mean() < 0.15:
            continue  # the large regions only
        distance = np.linalg.norm(style_means - arr[labels == i].mean(0), axis=1)
        assert distance.argmin() == i, (pair.palette[i], distance)
