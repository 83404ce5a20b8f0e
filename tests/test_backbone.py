import hashlib
import http.server
import threading

import pytest
import torch

from restyle import backbone
from restyle.backbone import VGG, layer_names, weights_from_torchvision_state_dict
from restyle.errors import RestyleError


def test_layer_names_cover_vgg16_and_vgg19():
    names16, names19 = layer_names("vgg16"), layer_names("vgg19")
    assert names16[:3] == ["conv1_1", "relu1_1", "conv1_2"]
    assert "relu5_3" in names16 and "relu5_4" not in names16
    assert "relu5_4" in names19 and names19[-1] == "pool5"
    assert len([n for n in names16 if n.startswith("conv")]) == 13


def test_embedded_vgg16_loads_and_gives_named_features(vgg):
    x = torch.rand(1, 3, 64, 64)
    f = vgg(x, ["relu1_1", "relu3_1", "pool4", "conv5_2"])
    assert f["relu1_1"].shape == (1, 64, 64, 64)
    assert f["relu3_1"].shape == (1, 256, 16, 16)
    assert f["pool4"].shape == (1, 512, 4, 4)
    assert f["conv5_2"].shape == (1, 512, 4, 4)
    assert (f["relu3_1"] >= 0).all() and (f["conv5_2"] < 0).any()
    assert not any(p.requires_grad for p in vgg.parameters())


def test_pretrained_features_respond_to_structure_not_noise(vgg):
    # A trained first layer contains edge detectors: an edge excites it far more than a flat image.
    flat = torch.full((1, 3, 32, 32), 0.5)
    edge = flat.clone()
    edge[..., 16:] = 1.0
    a = vgg(flat, ["relu1_1"])["relu1_1"][..., 4:-4, 4:-4].abs().mean()
    b = vgg(edge, ["relu1_1"])["relu1_1"][..., 4:-4, 4:-4].abs().mean()
    assert b > a * 1.2


def test_runs_only_up_to_the_deepest_layer_requested(vgg):
    # mark the convs after conv2_1 (output 1e6 everywhere): asking for relu2_1 must not run
    # them, asking for relu2_2 must (convs may run fused with their ReLU: no module hooks)
    saved = [(c.weight.detach().clone(), c.bias.detach().clone()) for c in vgg.convs]
    try:
        with torch.no_grad():
            for c in vgg.convs[3:]:
                c.weight.zero_()
                c.bias.fill_(1e6)
        assert vgg(torch.rand(1, 3, 32, 32), ["relu2_1"])["relu2_1"].max() < 1e5
        assert torch.all(vgg(torch.rand(1, 3, 32, 32), ["relu2_2"])["relu2_2"] == 1e6)
    finally:
        with torch.no_grad():
            for c, (w, b) in zip(vgg.convs, saved):
                c.weight.copy_(w)
                c.bias.copy_(b)


def test_caffe_preprocessing_inside_backbone(vgg):
    x = torch.rand(1, 3, 8, 8)
    manual = x.flip(1) * 255 - torch.tensor(backbone.CAFFE_BGR_MEAN).view(1, 3, 1, 1)
    assert torch.allclose(vgg.preprocess(x), manual, atol=1e-4)


def test_avg_pooling_differs_from_max():
    x = torch.rand(1, 3, 32, 32)
    a = VGG(pooling="max")(x, ["pool1"])["pool1"]
    b = VGG(pooling="avg")(x, ["pool1"])["pool1"]
    assert (a >= b - 1e-4).all() and not torch.allclose(a, b)


def test_unknown_layer_is_a_clear_error(vgg):
    with pytest.raises(RestyleError, match="unknown vgg16 layer"):
        vgg(torch.rand(1, 3, 32, 32), ["relu9_9"])


def test_weights_are_cached_as_safetensors(vgg):
    assert (backbone.cache_dir() / "vgg16_hed.safetensors").is_file()


# ---------------------------------------------------------------- torchvision-format weights

def make_state_dict(arch="vgg16", seed=0):
    g = torch.Generator().manual_seed(seed)
    state, idx, cin = {}, 0, 3
    for block, n in enumerate(backbone.VGG_BLOCKS[arch]):
        cout = backbone.CHANNELS[block]
        for _ in range(n):
            state[f"features.{idx}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
            state[f"features.{idx}.bias"] = torch.randn(cout, generator=g) * 0.01
            idx += 2  # conv, relu
            cin = cout
        idx += 1  # pool
    state["classifier.0.weight"] = torch.zeros(4, 4)
    return state


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_torchvision_state_dict_loader(tmp_path, arch):
    state = make_state_dict(arch)
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    w = backbone.torchvision_vgg(str(path))
    assert w.arch == arch and w.preprocessing == "torchvision"
    net = VGG(w)
    # conv1_1 of the loaded net equals a hand-made conv with torchvision's normalisation
    x = torch.rand(1, 3, 16, 16)
    mean = torch.tensor(backbone.TORCHVISION_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(backbone.TORCHVISION_STD).view(1, 3, 1, 1)
    expected = torch.nn.functional.conv2d((x - mean) / std, state["features.0.weight"],
                                          state["features.0.bias"], padding=1)
    assert torch.allclose(net(x, ["conv1_1"])["conv1_1"], expected, atol=1e-4)
    last = "relu5_4" if arch == "vgg19" else "relu5_3"
    assert net(torch.rand(1, 3, 32, 32), [last])[last].shape == (1, 512, 2, 2)


def test_loader_rejects_wrong_shapes_and_files(tmp_path):
    state = make_state_dict()
    state["features.2.weight"] = torch.zeros(64, 32, 3, 3)
    with pytest.raises(RestyleError, match="conv 1 has shape"):
        weights_from_torchvision_state_dict(state)
    with pytest.raises(RestyleError, match="VGG16 or VGG19"):
        weights_from_torchvision_state_dict({"features.0.weight": torch.zeros(64, 3, 3, 3),
                                            "features.0.bias": torch.zeros(64)})
    with pytest.raises(RestyleError, match="not found"):
        backbone.torchvision_vgg(str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RestyleError, match="cannot read weights"):
        backbone.torchvision_vgg(str(junk))


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    monkeypatch.setenv(backbone.ALLOW_HTTP_ENV, "1")  # a local test server speaks plain http
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_caches_and_checks_sha256(tmp_path, monkeypatch, http_server):
    monkeypatch.setenv("RESTYLE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "w.pth"
    torch.save(make_state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    named = tmp_path / f"vgg16-{digest[:8]}.pth"  # torchvision's naming: hash prefix in the name
    named.write_bytes(path.read_bytes())
    url = f"{http_server}/{named.name}"
    w = backbone.torchvision_vgg(url)
    assert w.arch == "vgg16"
    cached = backbone.download_path(url)
    assert cached.is_file() and cached.name == named.name
    assert cached.with_name(cached.name + ".sha256").read_text().split()[0] == digest
    named.unlink()  # served file gone: the cache answers
    assert backbone.torchvision_vgg(url).arch == "vgg16"
    with pytest.raises(RestyleError, match="checksum mismatch"):
        backbone.fetch(f"{http_server}/w.pth", sha256="0" * 64)
    assert not backbone.download_path(f"{http_server}/w.pth").exists()
    assert not [p for p in (tmp_path / "cache").rglob("*") if ".tmp" in p.name]


def test_download_cache_is_keyed_by_url_and_verified(tmp_path, monkeypatch, http_server):
    """Two URLs whose files have the same name get their own entries; a cached file that
    changed on disk (a torn or tampered copy) is downloaded again, not used."""
    monkeypatch.setenv("RESTYLE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    torch.save(make_state_dict("vgg16"), tmp_path / "a" / "weights.pth")
    torch.save(make_state_dict("vgg19"), tmp_path / "b" / "weights.pth")
    assert backbone.torchvision_vgg(f"{http_server}/a/weights.pth").arch == "vgg16"
    assert backbone.torchvision_vgg(f"{http_server}/b/weights.pth").arch == "vgg19"
    cached = backbone.download_path(f"{http_server}/a/weights.pth")
    cached.write_bytes(cached.read_bytes()[:1000])  # the cached copy is damaged
    assert backbone.torchvision_vgg(f"{http_server}/a/weights.pth").arch == "vgg16"
    assert cached.stat().st_size == (tmp_path / "a" / "weights.pth").stat().st_size


def test_download_refuses_plain_http_and_never_keeps_bad_files(tmp_path, monkeypatch,
                                                               http_server):
    monkeypatch.setenv("RESTYLE_CACHE", str(tmp_path / "cache"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not weights at all")
    url = f"{http_server}/junk.pth"
    with pytest.raises(RestyleError, match="cannot read weights"):
        backbone.torchvision_vgg(url)
    assert not backbone.download_path(url).exists()  # not kept: the next run downloads again
    monkeypatch.delenv(backbone.ALLOW_HTTP_ENV)
    with pytest.raises(RestyleError, match="refusing to download .* over plain http") as e:
        backbone.torchvision_vgg(url)
    assert "\n" not in str(e.value)
    with pytest.raises(RestyleError, match="only https"):
        backbone.fetch("ftp://example.org/w.pth")


def test_download_cut_short_is_not_kept(tmp_path, monkeypatch):
    """A server that closes the connection early: the partial file is not cached."""
    monkeypatch.setenv("RESTYLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(backbone.ALLOW_HTTP_ENV, "1")

    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/vgg16.pth"
    try:
        with pytest.raises(RestyleError, match="download"):
            backbone.fetch(url, timeout=5)
    finally:
        server.shutdown()
    folder = backbone.download_path(url).parent
    assert not folder.exists() or not list(folder.iterdir())


def test_download_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTYLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(backbone.ALLOW_HTTP_ENV, "1")
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(RestyleError, match="could not download .*pass the local file path"):
        backbone.torchvision_vgg(f"http://127.0.0.1:{port}/vgg19-dcbb9e9d.pth")
    assert not list((tmp_path / "cache" / "downloads").glob("*"))


def test_inference_shortcuts_equal_the_plain_layers():
    import torch.nn.functional as F

    from restyle.backbone import conv_relu, max_pool2
    conv = torch.nn.Conv2d(5, 7, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(2, 5, 11, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(conv_relu(conv, x), F.relu(conv(x)), atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused, plain = conv_relu(conv, x), F.relu(conv(x))
        assert fused.dtype == plain.dtype == torch.bfloat16
        assert torch.equal(fused, plain)
        for h, w in ((11, 9), (8, 8), (3, 2)):
            y = torch.randn(2, 4, h, w).contiguous(memory_format=torch.channels_last)
            assert torch.equal(max_pool2(y), F.max_pool2d(y, 2)), (h, w)
    # with gradients wanted the plain layers run, and gradients flow
    x.requires_grad_(True)
    conv_relu(conv, x).sum().backward()
    assert x.grad is not None and conv.weight.grad is not None
