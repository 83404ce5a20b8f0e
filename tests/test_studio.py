"""The studio: its HTTP API against a real server on loopback (submit, progress events,
results, limits, queue bound, cancel, restart), a load test, and the page driven in
headless Chromium.

Fast jobs use small fake methods registered only inside these tests (they go through
``restyle.api`` like any method); the real ones run gatys at 32 px for a few iterations
and the network method with a tiny random style network.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

from restyle import imaging  # noqa: E402
from restyle.methods import REGISTRY, Inputs, Method, all_methods  # noqa: E402
from restyle.optimize import Progress, Stop  # noqa: E402
from restyle.params import describe, param  # noqa: E402
from restyle.studio import StudioConfig, StudioServer  # noqa: E402
from restyle.studio.uploads import Limits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- fake methods

GATE = threading.Event()  # a "hold" job waits for this before each step


@dataclass
class FakeParams:
    steps: int = param(5, "iterations", min=1, max=1000)
    delay: float = param(0.0, "seconds per iteration", min=0.0, max=5.0)
    seed: int = param(0, "the output's colour (seed, 0, 255 - seed)", min=0, max=255)
    hold: bool = param(False, "wait for the test's gate before each step")


@dataclass
class FakeMaskParams(FakeParams):
    region_mask: str = param("", "one region: white is styled", metavar="PATH", kind="mask")
    masks: str = param("", "one mask per style, comma-separated", metavar="M1,M2", kind="mask",
                       per_style=True)
    style_map: str = param("", "semantic map of the style image", metavar="PATH", kind="map",
                           on="style")


class FakeOpt(Method):
    """Moves the content towards a flat colour, reporting each step like the engine."""

    name = "fake-opt"
    family = "image-optimization"
    task = "transfer"
    summary = "test method: fades the photo to a colour"
    Params = FakeParams
    seen: list = []

    def target(self, inputs: Inputs, p) -> torch.Tensor:
        return torch.tensor([p.seed, 0, 255 - p.seed], dtype=torch.float32).view(1, 3, 1, 1) / 255

    def run(self, inputs: Inputs, p, callbacks=()):
        FakeOpt.seen.append((inputs, p))
        image = imaging.to_tensor(inputs.content)
        target = self.target(inputs, p).expand_as(image)
        out = image
        try:
            for step in range(1, p.steps + 1):
                if p.hold:
                    GATE.wait(30)
                time.sleep(p.delay)
                out = image + (target - image) * (step / p.steps)
                loss = float((out - target).abs().mean())
                prog = Progress(0, 1, step, p.steps, step, p.steps, tuple(image.shape[-2:]), loss,
                                {"content": loss / 2, "style": loss / 2}, out, 0.0)
                for cb in callbacks:
                    cb(prog)
        except Stop:
            pass
        return out


class FakeMasked(FakeOpt):
    name = "fake-masked"
    summary = "test method: colours the masked region"
    Params = FakeMaskParams

    def run(self, inputs: Inputs, p, callbacks=()):
        FakeOpt.seen.append((inputs, p))
        image = imaging.to_tensor(inputs.content)
        target = self.target(inputs, p).expand_as(image)
        mask = torch.ones_like(image[:, :1])
        if p.region_mask:
            m = imaging.load_image(p.region_mask, "mask").convert("L").resize(inputs.content.size)
            mask = torch.from_numpy(np.asarray(m, np.float32) / 255)[None, None]
        return image * (1 - mask) + target * mask


class FakeOnePass(FakeOpt):
    name = "fake-onepass"
    family = "model-optimization"
    summary = "test method: a colour in one pass"

    def run(self, inputs: Inputs, p, callbacks=()):
        if p.hold:
            GATE.wait(30)
        image = imaging.to_tensor(inputs.content)
        return self.target(inputs, p).expand_as(image).clone()


class FakeCollage(FakeOpt):
    name = "fake-collage"
    task = "collage"  # a task of its own: its declarations are all the studio needs
    summary = "test method: a task no front end knows by name"


@dataclass
class FakeInitParams(FakeParams):
    init: str = param("content", "start image", metavar="content|noise|PATH", kind="image")
    weights: str = param("hed", "feature network", metavar="hed|PATH|URL", kind="path")


class FakeInit(FakeOpt):
    """Returns the init image it was given (a file), or the content for content or noise."""

    name = "fake-init"
    summary = "test method: starts from an init image"
    Params = FakeInitParams

    def run(self, inputs: Inputs, p, callbacks=()):
        FakeOpt.seen.append((inputs, p))
        return imaging.to_tensor(imaging.load_image(p.init, "init") if p.init not in
                                 ("content", "noise") else inputs.content)


class FakeTiled(FakeOnePass):
    """A one-pass method over many tiles (like a tiled network pass), no callbacks."""

    name = "fake-tiled"
    tiles_done = 0

    def run(self, inputs: Inputs, p, callbacks=()):
        from restyle.tiling import Grid
        image = imaging.to_tensor(inputs.content)
        FakeTiled.tiles_done = 0
        for _ in Grid(4096, 4096, 256, overlap=0, margin=0):  # 256 tiles
            time.sleep(0.05)
            FakeTiled.tiles_done += 1
        return image


FAKES = (FakeOpt, FakeMasked, FakeOnePass, FakeCollage, FakeInit, FakeTiled)


@pytest.fixture(autouse=True)
def fake_methods():
    all_methods()  # the built-in methods first, so the fakes come on top
    for cls in FAKES:
        REGISTRY[cls.name] = cls
    GATE.clear()
    FakeOpt.seen = []
    yield
    GATE.set()
    for cls in FAKES:
        REGISTRY.pop(cls.name, None)


# ----------------------------------------------------------------------------- HTTP helpers

def png_bytes(arr_or_img, fmt="PNG") -> bytes:
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def photo_png(side=48) -> bytes:
    from skimage import data
    img = Image.fromarray(data.astronaut())
    img.thumbnail((side, side))
    return png_bytes(img)


def flat_png(color=(200, 40, 40), side=40) -> bytes:
    return png_bytes(Image.new("RGB", (side, side), color))


def multipart(fields: dict, files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                  f"{value}\r\n".encode())
    for name, filename, data in files:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                  f"filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Client:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None):
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method: str, path: str, **kw) -> tuple:
        status, headers, body = self.request(method, path, **kw)
        return status, headers, (json.loads(body) if body else None)

    def get(self, path: str):
        return self.json("GET", path)

    def submit(self, method: str, params: dict | None = None, content: bytes | None = None,
               styles: list[bytes] = (), names: list[str] | None = None,
               weights: list[float] | None = None, extra_files=(), content_name="photo.png"):
        fields = {"method": method, "params": json.dumps(params or {})}
        if names is not None:
            fields["style_names"] = json.dumps(names)
        if weights is not None:
            fields["style_weights"] = json.dumps(weights)
        files = [("content", content_name, content)] if content is not None else []
        files += [("style", f"style{i}.png", s) for i, s in enumerate(styles)]
        files += list(extra_files)
        body, ctype = multipart(fields, files)
        return self.json("POST", "/api/jobs", body=body, headers={"Content-Type": ctype})

    def wait(self, job_id: str, timeout: float = 60, until=("done", "failed", "cancelled")):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _, job = self.get(f"/api/jobs/{job_id}")
            assert status == 200, job
            if job["status"] in until:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")

    def events(self, job_id: str, timeout: float = 120) -> list[dict]:
        """Every `job` event of the SSE stream until the server ends it."""
        req = urllib.request.Request(f"{self.url}/api/jobs/{job_id}/events")
        out, event = [], None
        with urllib.request.urlopen(req, timeout=timeout) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "job":
                    out.append(json.loads(line[5:]))
        return out


def start_server(tmp_path, **config) -> StudioServer:
    limits = config.pop("limits", Limits())
    data_dir = config.pop("data_dir", tmp_path / "store")
    return StudioServer(StudioConfig(data_dir=data_dir, limits=limits,
                                     preview_interval=0.0, **config)).start()


@pytest.fixture
def server(tmp_path):
    s = start_server(tmp_path)
    yield s
    GATE.set()
    s.stop()


@pytest.fixture
def client(server):
    return Client(server.url)


def job_dirs(root: Path) -> list[Path]:
    jobs = root / "jobs"
    return sorted(p for p in jobs.iterdir() if p.is_dir()) if jobs.exists() else []


# ----------------------------------------------------------------------------- catalog, docs

def test_methods_lists_every_registered_method_with_its_params(client):
    status, _, data = client.get("/api/methods")
    assert status == 200
    listed = {m["name"]: m for m in data["methods"]}
    registry = all_methods()
    assert sorted(listed) == sorted(m.name for m in registry)
    for cls in registry:
        info = listed[cls.name]
        assert info["family"] == cls.family and info["task"] == cls.task
        assert [p["name"] for p in info["params"]] == [d["name"] for d in describe(cls.Params)]
        for p, d in zip(info["params"], describe(cls.Params)):
            assert p["type"] == d["type"] and p["default"] == d["default"]
            assert p.get("min") == d.get("min") and p.get("max") == d.get("max")
    gatys = listed["gatys"]
    strength = next(p for p in gatys["params"] if p["name"] == "strength")
    assert (strength["min"], strength["max"], strength["type"]) == (0.0, 1.0, "float")
    assert gatys["live_preview"] and gatys["inputs"] == {"content": "content", "styles": "style"}
    assert listed["texture"]["inputs"] == {"content": None, "styles": "exemplar"}
    assert listed["network"]["style_kind"] == "name"
    assert listed["fake-masked"]["mask_fields"] == ["region_mask", "masks", "style_map"]
    masks = {m["name"]: m for m in listed["fake-masked"]["masks"]}
    assert masks["masks"]["per_style"] and not masks["region_mask"]["per_style"]
    assert (masks["region_mask"]["kind"], masks["region_mask"]["on"]) == ("mask", "content")
    assert (masks["style_map"]["kind"], masks["style_map"]["on"]) == ("map", "style")
    # a stroke field: an image painted in colour, or the keyword 'etf' as a plain value
    field = next(m for m in listed["gatys"]["masks"] if m["name"] == "stroke_field")
    assert (field["kind"], field["on"], field["per_style"]) == ("field", "content", False)
    assert next(p for p in listed["gatys"]["params"]
                if p["name"] == "stroke_field")["keywords"] == ["etf"]
    assert listed["gatys"]["unavailable"] is None
    # a method of a new task runs from its declarations alone (no API function named
    # after the task is needed)
    assert listed["fake-collage"]["unavailable"] is None
    status, _, job = client.submit("fake-collage", content=flat_png(), styles=[flat_png()])
    assert status == 202, job
    assert client.wait(job["id"])["status"] == "done"


def test_openapi_documents_the_endpoints_and_the_page_needs_no_cdn(client):
    status, _, spec = client.get("/openapi.json")
    assert status == 200
    paths = spec["paths"]
    assert {"post", "get"} <= set(paths["/api/jobs"])
    for path in ("/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/result",
                 "/api/jobs/{job_id}/preview", "/api/jobs/{job_id}/cancel", "/api/methods",
                 "/api/models", "/api/status"):
        assert path in paths, path
    assert "post" in paths["/api/jobs/{job_id}/cancel"]
    assert {"413", "422", "429"} <= set(paths["/api/jobs"]["post"]["responses"])
    body_ref = paths["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body_ref
    status, _, page = client.request("GET", "/")
    html = page.decode()
    assert status == 200 and "/static/studio.js" in html
    for name in ("index.html", "studio.js", "studio.css", "api.html"):
        text = (ROOT / "restyle" / "studio" / "static" / name).read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), name  # nothing external
        assert "cdn" not in text.lower(), name
    for path in ("/static/studio.js", "/static/studio.css", "/api-docs"):
        assert client.request("GET", path)[0] == 200, path


def test_other_sites_cannot_drive_the_studio(client, server):
    body, ctype = multipart({"method": "fake-opt"}, [("content", "a.png", flat_png()),
                                                     ("style", "b.png", flat_png())])
    for origin in ("http://evil.example", "null"):
        status, _, err = client.json("POST", "/api/jobs", body=body,
                                     headers={"Content-Type": ctype, "Origin": origin})
        assert status == 403 and "may not change" in err["error"]
    status, _, err = client.json("GET", "/api/jobs", headers={"Host": "evil.example"})
    assert status == 403 and "loopback" in err["error"]  # DNS rebinding
    own = f"http://127.0.0.1:{server.port}"
    status, _, job = client.json("POST", "/api/jobs", body=body,
                                 headers={"Content-Type": ctype, "Origin": own})
    assert status == 202, job
    assert job_dirs(server.config.data_dir) == [server.config.data_dir / "jobs" / job["id"]]


# ----------------------------------------------------------------------------- a real job

def test_gatys_job_streams_progress_and_gives_a_png(client, server, monkeypatch):
    from restyle.backbone import VGG
    forward = VGG.forward

    def slow(self, *args, **kwargs):  # steps longer than the stream's 0.1 s poll: all seen
        time.sleep(0.25)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(VGG, "forward", slow)
    status, headers, job = client.submit("gatys", {"size": 32, "iterations": 3, "min_size": 0},
                                         content=photo_png(48), styles=[flat_png()])
    assert status == 202, job
    assert headers["location"] == f"/api/jobs/{job['id']}"
    assert job["status"] in ("queued", "running")
    events = client.events(job["id"])
    assert events[-1]["status"] == "done", events[-1]
    steps = [e["progress"] for e in events if e.get("progress")]
    assert [p["step"] for p in steps][-1] == 3 and steps[-1]["steps"] == 3
    assert steps[-1]["parts"]["style"] < steps[0]["parts"]["style"]  # the style loss fell
    assert "content" in steps[0]["parts"]
    assert any("preview" in e["links"] for e in events)
    status, headers, preview = client.request("GET", f"/api/jobs/{job['id']}/preview")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(preview)).format == "JPEG"
    done = events[-1]
    assert done["result"]["width"] == 32 and done["links"]["download"].endswith("download=1")
    status, headers, png = client.request("GET", done["links"]["download"])
    assert status == 200 and headers["content-type"] == "image/png"
    assert "attachment" in headers["content-disposition"]
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and max(img.size) == 32
    photo = np.asarray(Image.open(io.BytesIO(photo_png(48))).resize(img.size), np.float32)
    assert np.abs(np.asarray(img.convert("RGB"), np.float32) - photo).mean() > 2  # it changed
    status, _, thumb = client.request("GET", f"/api/jobs/{job['id']}/thumbnail")
    assert status == 200 and Image.open(io.BytesIO(thumb)).format == "JPEG"
    listed = client.get("/api/jobs")[2]["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_anytime_job_reports_its_time_budget(client):
    job = client.submit("anytime", {"size": 32, "budget": 120, "iterations": 3},
                        content=photo_png(48), styles=[flat_png()])[2]
    events = client.events(job["id"])
    assert events[-1]["status"] == "done", events[-1]
    steps = [e["progress"] for e in events if e.get("progress")]
    assert steps[-1]["step"] == 3  # the one-pass start (step 0), then the refinement
    assert all(0 <= p["remaining"] <= 120 for p in steps)  # the bar follows the budget
    assert any("preview" in e["links"] for e in events)


def test_one_pass_network_method_with_model_styles(tmp_path, monkeypatch):
    from restyle.nets.stylenet import StyleNet
    folder = tmp_path / "models"
    folder.mkdir()
    torch.manual_seed(0)
    net = StyleNet(["waves", "dots"], 8, 1)
    for norm in net.norms():
        norm.gamma.data.uniform_(0.5, 1.5)
        norm.beta.data.normal_(0, 0.5)
    net.save(folder / "tiny.safetensors", steps=1)
    monkeypatch.setenv("RESTYLE_MODELS", str(folder))
    with start_server(tmp_path) as s:
        c = Client(s.url)
        models = c.get("/api/models")[2]
        assert models["models"] == [{"name": "tiny", "styles": ["waves", "dots"], "steps": "1"}]
        status, _, err = c.submit("network", {"model": "tiny", "size": 32}, content=photo_png(),
                                  names=["clouds"])
        assert status == 422 and "waves, dots" in err["error"]
        status, _, err = c.submit("network", {"model": "tiny"}, content=photo_png(),
                                  styles=[flat_png()])
        assert status == 422 and "style names" in err["error"]
        status, _, job = c.submit("network", {"model": "tiny", "size": 32}, content=photo_png(),
                                  names=["waves", "dots"], weights=[0.3, 0.7])
        assert status == 202, job
        events = c.events(job["id"])
        assert events[-1]["status"] == "done" and events[-1]["result"]["width"] == 32
        assert all(e["progress"] is None for e in events)  # one pass: no iterations
        png = c.request("GET", f"/api/jobs/{job['id']}/result")[2]
        ours = np.asarray(Image.open(io.BytesIO(png)), np.float32)
        from restyle.api import transfer
        direct = transfer(Image.open(io.BytesIO(photo_png())), ["waves:0.3", "dots:0.7"],
                          method="network", model="tiny", size=32)
        assert np.abs(ours - np.asarray(direct, np.float32)).max() <= 1  # same as the API


# ----------------------------------------------------------------------------- bad input

def test_upload_limits_and_bad_images(tmp_path):
    limits = Limits(max_request_bytes=200_000, max_file_bytes=30_000, max_pixels=20_000)
    with start_server(tmp_path, limits=limits) as s:
        c = Client(s.url)
        noise = png_bytes(np.random.default_rng(0).integers(0, 255, (100, 100, 3), np.uint8))
        assert 30_000 < len(noise) < 200_000
        status, _, err = c.submit("fake-opt", content=noise, styles=[flat_png()])
        assert status == 413 and "up to 29 KiB" in err["error"] and "content image" in err["error"]
        big = png_bytes(Image.new("RGB", (300, 300), (9, 9, 9)))  # few bytes, 90k pixels
        assert len(big) < 30_000
        status, _, err = c.submit("fake-opt", content=flat_png(), styles=[big])
        assert status == 413 and "megapixels" in err["error"] and "style image" in err["error"]
        status, _, err = c.submit("fake-opt", content=b"GIF89a not really", styles=[flat_png()])
        assert status == 422 and "not an image" in err["error"]
        truncated = photo_png(64)[:400]
        status, _, err = c.submit("fake-opt", content=truncated, styles=[flat_png()])
        assert status == 422 and "damaged or truncated" in err["error"], err
        # a body over the request limit is refused by its Content-Length, unread
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            sock.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-"
                         b"data; boundary=b\r\nContent-Length: 5000000\r\n\r\n--b\r\n")
            reply = b""
            while b"}" not in reply:
                reply += sock.recv(65536)
        head, _, body = reply.decode().partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 413") and "application/json" in head
        assert "per request" in json.loads(body)["error"]
        # bad parameters and inputs: one-line JSON errors, nothing stored
        for kwargs, text in [
            (dict(method="fake-opt", params={"steps": 0}), "at least 1"),
            (dict(method="fake-opt", params={"bogus": 1}), "unknown parameter"),
            (dict(method="nope"), "unknown method"),
            (dict(method="fake-opt", content=None), "needs a content image"),
            (dict(method="fake-opt", styles=[]), "at least one style"),
            (dict(method="fake-opt", weights=[1, 2]), "2 numbers for 1 styles"),
            (dict(method="fake-opt", weights=[0]), "not all zero"),
            (dict(method="texture"), "takes no content image"),
            (dict(method="fake-masked", params={"region_mask": "/etc/hostname"}),
             "send it as a file part"),
            (dict(method="gatys", params={"stroke_field": "/etc/hostname"}),
             "send it as a file part"),
            (dict(method="fake-opt", extra_files=[("region_mask", "m.png", flat_png())]),
             "unexpected file part"),
        ]:
            args = {"content": flat_png(), "styles": [flat_png()], **kwargs}
            status, _, err = c.submit(args.pop("method"), **args)
            assert status == 422, (kwargs, err)
            assert text in err["error"], (text, err)
            assert "\n" not in err["error"]
        status, _, err = c.json("POST", "/api/jobs", body=b"method=fake-opt&params={",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 422 and "params is not valid JSON" in err["error"]
        assert job_dirs(s.config.data_dir) == []


def test_client_file_names_never_become_paths(client, server, tmp_path):
    evil = ["../../../evil.png", "..\\..\\evil2.png", "/etc/evil3.png", "a/../../evil4.png"]
    ids = []
    for name in evil:
        status, _, job = client.submit("fake-opt", content=flat_png(), styles=[flat_png()],
                                       content_name=name)
        assert status == 202, job
        ids.append(job["id"])
        assert "/" not in job["labels"]["content"] and "\\" not in job["labels"]["content"]
        assert job["labels"]["content"].startswith("evil")
        assert job["inputs"]["content"] == "content.png"
    for job_id in ids:
        client.wait(job_id)
    found = [p for p in tmp_path.rglob("*evil*")] + [p for p in Path("/etc").glob("evil*")]
    assert found == []
    for d in job_dirs(server.config.data_dir):
        names = {p.name for p in d.rglob("*") if p.is_file()}
        assert names <= {"job.json", "content.png", "style-0.png", "result.png", "preview.jpg",
                         "thumbnail.jpg"}, names
    for path in (f"/api/jobs/{ids[0]}/inputs/..%2Fjob.json", f"/api/jobs/{ids[0]}/inputs/job.json",
                 "/api/jobs/..%2F..%2Fetc/result", f"/api/jobs/{ids[0][:-1]}X/result"):
        assert client.request("GET", path)[0] == 404, path
    status, _, data = client.request("GET", f"/api/jobs/{ids[0]}/inputs/content.png")
    assert status == 200 and Image.open(io.BytesIO(data)).size == (40, 40)


# ----------------------------------------------------------------------------- queue, cancel

def test_full_queue_answers_429_with_retry_after(tmp_path):
    with start_server(tmp_path, workers=1, queue_size=2) as s:
        c = Client(s.url)
        held = dict(content=flat_png(), styles=[flat_png()])
        running = c.submit("fake-opt", {"hold": True, "steps": 1}, **held)[2]
        c.wait(running["id"], until=("running",))
        queued = [c.submit("fake-opt", {"hold": True, "steps": 1}, **held) for _ in range(2)]
        assert [q[0] for q in queued] == [202, 202]
        assert [q[2]["queue_position"] for q in queued] == [1, 2]
        status, headers, err = c.submit("fake-opt", {"steps": 1}, **held)
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert "queue is full" in err["error"]
        stats = c.get("/api/status")[2]["queue"]
        assert stats["queued"] == 2 and stats["peak_queued"] == 2 and stats["rejected"] >= 1
        GATE.set()
        for job in [running] + [q[2] for q in queued]:
            assert c.wait(job["id"])["status"] == "done"
        assert c.submit("fake-opt", {"steps": 1}, **held)[0] == 202  # room again
        assert len(job_dirs(s.config.data_dir)) == 4  # the refused one left nothing


def test_cancel_queued_and_running_jobs(client):
    running = client.submit("fake-opt", {"steps": 400, "delay": 0.01}, content=flat_png(),
                            styles=[flat_png()])[2]
    queued = client.submit("fake-opt", {"steps": 2}, content=flat_png(), styles=[flat_png()])[2]
    client.wait(running["id"], until=("running",))
    status, _, job = client.json("POST", f"/api/jobs/{queued['id']}/cancel")
    assert status == 200 and job["status"] == "cancelled" and job["result"] is None
    deadline = time.monotonic() + 10
    while (client.get(f"/api/jobs/{running['id']}")[2]["progress"] or {}).get("step", 0) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    status, _, job = client.json("POST", f"/api/jobs/{running['id']}/cancel")
    assert status == 200 and job["cancel_requested"]
    job = client.wait(running["id"])
    assert job["status"] == "cancelled" and job["partial"]
    assert job["progress"]["step"] < 400  # stopped early
    status, headers, png = client.request("GET", job["links"]["download"])
    assert status == 200 and "partial" in headers["content-disposition"]
    assert client.json("POST", f"/api/jobs/{running['id']}/cancel")[0] == 409
    assert client.request("GET", f"/api/jobs/{queued['id']}/result")[0] == 409
    assert client.request("DELETE", f"/api/jobs/{queued['id']}")[0] == 204
    assert client.request("GET", f"/api/jobs/{queued['id']}")[0] == 404


def test_cancel_a_real_gatys_run_keeps_the_image_so_far(client):
    job = client.submit("gatys", {"size": 32, "iterations": 500, "min_size": 0},
                        content=photo_png(48), styles=[flat_png()])[2]
    deadline = time.monotonic() + 60
    while (client.get(f"/api/jobs/{job['id']}")[2]["progress"] or {}).get("step", 0) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.json("POST", f"/api/jobs/{job['id']}/cancel")
    job = client.wait(job["id"])
    assert job["status"] == "cancelled" and job["partial"] and job["progress"]["step"] < 500
    assert job["result"]["width"] == 32


# ----------------------------------------------------------------------------- masks

def test_mask_uploads_reach_the_method_as_server_paths(client, server):
    mask = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # transparent = outside
    mask.paste((255, 255, 255, 255), (0, 0, 20, 40))  # left half painted
    status, _, job = client.submit("fake-masked", {"seed": 255}, content=flat_png((0, 200, 0)),
                                   styles=[flat_png()],
                                   extra_files=[("region_mask", "../m.png", png_bytes(mask))])
    assert status == 202, job
    job = client.wait(job["id"])
    assert job["status"] == "done", job
    out = np.asarray(Image.open(io.BytesIO(client.request("GET", job["links"]["result"])[2])))
    assert tuple(out[20, 5]) == (255, 0, 0)  # inside: the method's colour
    assert tuple(out[20, 35]) == (0, 200, 0)  # outside: the photo
    inputs, params = FakeOpt.seen[-1]
    stored = Path(params.region_mask)
    assert stored.name == "mask-region_mask-0.png"
    assert server.config.data_dir in stored.parents
    # one mask per style: the method gets them comma-separated, in style order
    status, _, job = client.submit(
        "fake-masked", content=flat_png(), styles=[flat_png(), flat_png((0, 0, 200))],
        extra_files=[("masks", "a.png", flat_png((255, 255, 255))),
                     ("masks", "b.png", flat_png((0, 0, 0)))])
    assert status == 202
    client.wait(job["id"])
    paths = FakeOpt.seen[-1][1].masks.split(",")
    assert [Path(p).name for p in paths] == ["mask-masks-0.png", "mask-masks-1.png"]


def test_gatys_object_mask_from_the_studio(client):
    from restyle.studio.catalog import mask_fields
    if "object_mask" not in mask_fields("gatys"):
        pytest.skip("gatys has no object_mask parameter in this tree")
    mask = Image.new("L", (48, 48), 0)
    mask.paste(255, (0, 0, 24, 48))
    status, _, job = client.submit("gatys", {"size": 32, "iterations": 4, "min_size": 0},
                                   content=photo_png(48), styles=[flat_png((20, 20, 230))],
                                   extra_files=[("object_mask", "m.png", png_bytes(mask))])
    assert status == 202, job
    job = client.wait(job["id"], timeout=120)
    assert job["status"] == "done", job["error"]
    out = np.asarray(Image.open(io.BytesIO(client.request("GET", job["links"]["result"])[2])),
                     np.float32)
    photo = np.asarray(Image.open(io.BytesIO(photo_png(48))).resize((32, 32)), np.float32)
    change = np.abs(out - photo).mean(axis=2)
    assert change[:, :12].mean() > change[:, 20:].mean()  # the masked half moved more


# ----------------------------------------------------------------------------- restart

def _start_cli(data_dir: Path, env: dict) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "restyle", "studio", "--data-dir",
                             str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    line = proc.stdout.readline()
    m = re.match(r"restyle studio: (http://127\.0\.0\.1:\d+/)", line)
    assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, m.group(1)


def test_restart_keeps_results_and_reports_cut_off_jobs(tmp_path):
    data_dir = tmp_path / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc, url = _start_cli(data_dir, env)
    try:
        c = Client(url)
        done = c.submit("gatys", {"size": 32, "iterations": 2, "min_size": 0},
                        content=photo_png(), styles=[flat_png()])[2]
        assert c.wait(done["id"], timeout=120)["status"] == "done"
        result = c.request("GET", f"/api/jobs/{done['id']}/result")[2]
        long = c.submit("gatys", {"size": 48, "iterations": 100000, "min_size": 0},
                        content=photo_png(), styles=[flat_png()])[2]
        waiting = c.submit("gatys", {"size": 32}, content=photo_png(), styles=[flat_png()])[2]
        deadline = time.monotonic() + 60
        while not (c.get(f"/api/jobs/{long['id']}")[2]["progress"] or {}).get("step"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash: nothing gets to clean up
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    proc, url = _start_cli(data_dir, env)
    try:
        c = Client(url)
        job = c.get(f"/api/jobs/{done['id']}")[2]
        assert job["status"] == "done"
        status, _, again = c.request("GET", f"/api/jobs/{done['id']}/result")
        assert status == 200 and again == result
        cut = c.get(f"/api/jobs/{long['id']}")[2]
        assert cut["status"] == "failed" and cut["interrupted"]
        assert "interrupted" in cut["error"] and "running" in cut["error"]
        assert c.request("GET", f"/api/jobs/{long['id']}/preview")[0] == 200  # last preview kept
        never = c.get(f"/api/jobs/{waiting['id']}")[2]
        assert never["status"] == "failed" and never["interrupted"]
        assert "before this job started" in never["error"]
        stats = c.get("/api/status")[2]["queue"]
        assert stats["running"] == 0 and stats["queued"] == 0
    finally:
        proc.send_signal(signal.SIGINT)  # a clean stop
        assert proc.wait(30) == 0
        assert "stopped" in proc.stdout.read()
        proc.stdout.close()
        proc.stderr.close()


def test_a_clean_stop_marks_running_jobs_interrupted(tmp_path):
    s = start_server(tmp_path)
    c = Client(s.url)
    done = c.submit("fake-opt", {"seed": 7}, content=flat_png(), styles=[flat_png()])[2]
    c.wait(done["id"])
    job = c.submit("fake-opt", {"steps": 1000, "delay": 0.01}, content=flat_png(),
                   styles=[flat_png()])[2]
    c.wait(job["id"], until=("running",))
    s.stop()
    with start_server(tmp_path) as s2:
        c2 = Client(s2.url)
        again = c2.get(f"/api/jobs/{job['id']}")[2]
        assert again["status"] == "failed" and again["interrupted"]
        assert "stopped while this job was running" in again["error"]
        status, _, png = c2.request("GET", f"/api/jobs/{done['id']}/result")
        assert status == 200 and Image.open(io.BytesIO(png)).getpixel((1, 1)) == (7, 0, 248)


# ----------------------------------------------------------------------------- load

def test_fifty_concurrent_jobs_none_lost_and_the_queue_bound_holds(tmp_path):
    bound = 6
    with start_server(tmp_path, workers=1, queue_size=bound) as s:
        c = Client(s.url)
        results: dict[int, dict] = {}
        refused = []
        errors = []

        def client_thread(seed: int):
            try:
                for _ in range(100):
                    status, headers, job = c.submit("fake-onepass", {"seed": seed, "hold": True},
                                                    content=flat_png(side=16), styles=[flat_png()])
                    if status == 202:
                        break
                    assert status == 429, job
                    refused.append(seed)
                    time.sleep(min(2.0, float(headers["retry-after"])) * (0.5 + seed % 5 / 10))
                else:
                    raise AssertionError(f"client {seed} never got in")
                results[seed] = c.wait(job["id"], timeout=120)
            except BaseException as e:  # reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        # the worker holds its first job until the queue has filled and turned clients away
        deadline = time.monotonic() + 60
        while len(refused) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        GATE.set()
        for t in threads:
            t.join(180)
        assert errors == []
        assert sorted(results) == list(range(50))  # every client got its job done
        assert len({j["id"] for j in results.values()}) == 50
        for seed, job in results.items():
            assert job["status"] == "done"
            png = c.request("GET", f"/api/jobs/{job['id']}/result")[2]
            assert Image.open(io.BytesIO(png)).getpixel((3, 3)) == (seed, 0, 255 - seed)
        stats = c.get("/api/status")[2]["queue"]
        assert stats["peak_queued"] <= bound  # never a longer backlog
        assert refused and stats["rejected"] >= len(refused)  # the bound was reached
        assert stats["jobs"] == 50 and len(job_dirs(s.config.data_dir)) == 50


# ----------------------------------------------------------------------------- the page

@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    exe = os.environ.get("RESTYLE_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    if not exe:
        pytest.skip("no Chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


def _files(tmp_path) -> tuple[Path, Path]:
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    photo.write_bytes(photo_png(96))
    style.write_bytes(flat_png((30, 60, 220), 64))
    return photo, style


def _screenshot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    keep = os.environ.get("RESTYLE_STUDIO_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def test_page_upload_run_progress_cancel_and_download(browser, server, tmp_path, monkeypatch):
    monkeypatch.setenv("RESTYLE_MODELS", str(tmp_path))  # no style network installed
    photo, style = _files(tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']")
    options = page.eval_on_selector_all("#method option", "os => os.map(o => o.value)")
    assert sorted(options) == sorted(m.name for m in all_methods())
    # controls generated from the typed parameters
    page.select_option("#method", "gatys")
    assert page.get_attribute("#param-strength", "type") == "range"
    assert page.eval_on_selector("#param-preserve_color", "e => e.tagName") == "SELECT"
    page.select_option("#method", "texture")
    assert page.get_attribute("#param-tileable", "type") == "checkbox"
    assert page.is_hidden("#content-card") and page.text_content("#style-title") == \
        "Texture exemplars"
    page.select_option("#method", "network")
    page.wait_for_function("document.getElementById('models-note').textContent"
                           ".includes('No style network')")
    assert page.is_visible("#style-names") and page.is_hidden("#model-field")
    page.select_option("#method", "fake-onepass")
    assert "no mask parameter" in page.inner_text("#mask-note")

    # a slow optimization: previews and progress, then cancel
    page.select_option("#method", "fake-opt")
    page.set_input_files("#content-input", str(photo))
    page.set_input_files("#style-input", [str(style), str(style)])
    page.wait_for_function("document.querySelectorAll('#style-list li').length == 2")
    page.click("#params-advanced-box summary")
    page.fill("#param-steps", "300")
    page.fill("#param-delay", "0.05")
    page.click("#run")
    page.wait_for_function("/step ([5-9]|[1-9][0-9]+)\\//.test(document.querySelector("
                           "'#status-meta').textContent)", timeout=20000)
    width = page.eval_on_selector("#progress-fill", "e => parseFloat(e.style.width)")
    assert 0 < width < 100
    page.wait_for_function("!document.getElementById('view-img').hidden && "
                           "document.getElementById('view-img').src.includes('/preview')")
    assert "loss" in page.inner_text("#losses")
    _screenshot(page, tmp_path, "studio-running")
    page.click("#cancel")
    page.wait_for_selector(".status-text.cancelled", timeout=20000)
    assert "partial" in page.inner_text("#status-text")

    # a full run to the end, then download
    page.fill("#param-steps", "5")
    page.fill("#param-delay", "0")
    page.fill("#param-seed", "250")
    page.click("#run")
    page.wait_for_selector(".status-text.done", timeout=20000)
    href = page.get_attribute("#download", "href")
    with page.expect_download() as dl:
        page.click("#download")
    path = dl.value.path()
    img = Image.open(path)
    assert img.format == "PNG" and img.getpixel((5, 5)) == (250, 0, 5)
    assert dl.value.suggested_filename.startswith("restyle-fake-opt-")
    assert "download=1" in href
    # side by side: the cancelled (partial) and the finished result
    page.click("#compare-add")
    page.locator(".job").nth(1).locator("button", has_text="compare").click()
    page.wait_for_function("document.querySelectorAll('#compare-grid figure').length == 2")
    _screenshot(page, tmp_path, "studio-done")
    # form errors are shown, not thrown
    page.fill("#param-steps", "0")
    page.click("#run")
    assert "at least 1" in page.inner_text("#form-error")
    # a real method from the same form: gatys, small
    page.select_option("#method", "gatys")
    page.fill("#param-size", "32")
    page.fill("#param-iterations", "3")
    page.fill("#param-min_size", "0")
    page.click("#run")
    page.wait_for_function("document.getElementById('status-text').classList.contains('done')"
                           " && document.getElementById('status-meta').textContent"
                           ".includes('32×32 px')", timeout=60000)
    assert "style" in page.inner_text("#losses")
    assert errors == []


def test_page_mask_painting_polling_fallback_and_phone_width(browser, server, tmp_path):
    photo, style = _files(tmp_path)
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page.add_init_script("window.__studioNoSSE = true")  # force the polling fallback
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    logic = page.evaluate("""() => { const L = window.studioLogic; return [
        L.controlKind({type: 'float', min: 0, max: 1}), L.controlKind({type: 'int', min: 16, max: 16384}),
        L.controlKind({type: 'bool'}), L.controlKind({type: 'str', choices: ['a']}),
        L.controlKind({type: 'str'}), L.checkValue({name: 'size', type: 'int', min: 16}, 8),
        L.changedParams([{name: 'a', default: 1}, {name: 'b', default: 'x'}], {a: 1, b: 'y'})]; }""")
    assert logic == ["slider", "number", "toggle", "select", "text", "size must be at least 16",
                     {"b": "y"}]
    page.select_option("#method", "fake-masked")
    page.set_input_files("#content-input", str(photo))
    page.set_input_files("#style-input", str(style))
    page.wait_for_function("document.querySelectorAll('#style-list li').length == 1 && "
                           "document.getElementById('mask-canvas').width > 0")
    page.select_option("#mask-target", "region_mask:0")
    canvas = page.locator("#mask-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.eval_on_selector("#mask-brush", "e => { e.value = 60; }")
    page.mouse.move(box["x"] + 20, box["y"] + 2)
    page.mouse.down()
    for i in range(1, 13):
        page.mouse.move(box["x"] + 20, box["y"] + box["height"] * i / 12 - 1)
    page.mouse.up()
    _screenshot(page, tmp_path, "studio-phone-mask")
    page.click("#params-advanced-box summary")
    page.fill("#param-seed", "255")
    page.click("#run")
    page.wait_for_selector(".status-text.done", timeout=20000)
    inputs, params = FakeOpt.seen[-1]
    mask = np.asarray(Image.open(params.region_mask).convert("L"), np.float32) / 255
    w = mask.shape[1]
    assert mask[:, : w // 10].mean() > 0.5 and mask[:, w // 2:].mean() < 0.01  # the stroke
    assert errors == []


# ----------------------------------------------------------------------------- audit (#23)

def test_server_paths_and_urls_are_refused_unless_allowed(tmp_path):
    """Without --allow-server-paths a client can neither read the server's images (init),
    probe its files nor make it fetch URLs; built-in values and uploads still work."""
    secret = tmp_path / "secret.png"
    Image.new("RGB", (40, 40), (1, 2, 3)).save(secret)
    with start_server(tmp_path) as s:
        c = Client(s.url)
        for params in ({"init": str(secret)}, {"init": "secret.png"},
                       {"weights": "https://example.org/vgg16-397923af.pth"},
                       {"weights": "/etc/hostname"}):
            status, _, err = c.submit("fake-init", params, content=flat_png(),
                                      styles=[flat_png()])
            assert status == 422 and "--allow-server-paths" in err["error"], err
        for method, params in (("adain", {"decoder": str(secret)}),
                               ("adain-lite", {"model": str(secret)}),
                               ("wct", {"decoder_dir": str(tmp_path)}),
                               ("network", {"model": str(secret)})):
            status, _, err = c.submit(method, params, content=flat_png(), styles=[flat_png()],
                                      names=["a"] if method == "network" else None)
            assert status == 422 and "--allow-server-paths" in err["error"], (method, err)
        assert FakeOpt.seen == [] and job_dirs(s.config.data_dir) == []
        job = c.submit("fake-init", {"init": "noise"}, content=flat_png(), styles=[flat_png()])[2]
        assert c.wait(job["id"])["status"] == "done"
        # an init image goes as a file part named after the parameter
        status, _, job = c.submit("fake-init", content=flat_png(), styles=[flat_png()],
                                  extra_files=[("init", "start.png",
                                                flat_png((9, 99, 199)))])
        assert status == 202, job
        done = c.wait(job["id"])
        assert done["status"] == "done"
        png = c.request("GET", f"/api/jobs/{job['id']}/result")[2]
        assert Image.open(io.BytesIO(png)).getpixel((5, 5)) == (9, 99, 199)
        status, _, err = c.submit("fake-init", {"init": "noise"}, content=flat_png(),
                                  styles=[flat_png()], extra_files=[("init", "i.png", flat_png())])
        assert status == 422 and "both a parameter and an uploaded file" in err["error"]
        assert c.get("/api/status")[2]["allow_server_paths"] is False
    with start_server(tmp_path, data_dir=tmp_path / "trusted", allow_server_paths=True) as s:
        c = Client(s.url)
        job = c.submit("fake-init", {"init": str(secret)}, content=flat_png(),
                       styles=[flat_png()])[2]
        assert c.wait(job["id"])["status"] == "done"
        png = c.request("GET", f"/api/jobs/{job['id']}/result")[2]
        assert Image.open(io.BytesIO(png)).getpixel((5, 5)) == (1, 2, 3)


def test_non_finite_numbers_and_bad_sizes_are_422_at_submit(tmp_path):
    with start_server(tmp_path) as s:
        c = Client(s.url)
        for text in ("NaN", "Infinity", "-Infinity", "1e309"):
            body, ctype = multipart({"method": "fake-opt", "params": f'{{"steps": {text}}}'},
                                    [("content", "c.png", flat_png()),
                                     ("style", "s.png", flat_png())])
            status, _, err = c.json("POST", "/api/jobs", body=body,
                                    headers={"Content-Type": ctype})
            assert status == 422 and "finite number" in err["error"], (text, err)
        for size in ("big", "10x10", "0x512", "20000x16"):
            status, _, err = c.submit("texture", {"size": size}, styles=[flat_png()])
            assert status == 422 and "--size" in err["error"], (size, err)
        body, ctype = multipart({"method": "fake-opt", "style_weights": "[NaN]"},
                                [("content", "c.png", flat_png()), ("style", "s.png", flat_png())])
        status, _, err = c.json("POST", "/api/jobs", body=body, headers={"Content-Type": ctype})
        assert status == 422 and "style_weights" in err["error"]
        assert job_dirs(s.config.data_dir) == []


def test_api_raises_restyle_error_for_non_finite_integers():
    from restyle.errors import RestyleError
    from restyle.params import make
    for value in (float("nan"), float("inf"), 1e309):
        with pytest.raises(RestyleError, match="finite number"):
            make(FakeParams, steps=value)


def test_job_pixels_and_memory_are_capped_before_uploads_are_read(tmp_path):
    with start_server(tmp_path, memory_budget=3 * 2**30) as s:
        c = Client(s.url)
        status, _, err = c.submit("texture", {"size": "16384x16384"}, styles=[flat_png()])
        assert status == 413 and "megapixels" in err["error"] and "size" in err["error"], err
        status, _, err = c.submit("gatys", {"size": 2048}, content=flat_png(),
                                  styles=[flat_png()])
        assert status == 413 and "memory" in err["error"] and "3.0 GB" in err["error"], err
        assert job_dirs(s.config.data_dir) == []
        job = c.submit("fake-opt", {"steps": 2}, content=flat_png(), styles=[flat_png()])[2]
        assert job["estimate"]["bytes"] > 0
        limits = c.get("/api/status")[2]["limits"]
        assert limits["memory_budget"] == 3 * 2**30 and limits["max_job_pixels"] == 4096 ** 2


def test_a_job_starts_only_when_its_memory_fits_next_to_the_running_ones(tmp_path):
    """Two workers, two jobs of 0.6 of the budget each: they run one after the other."""
    from restyle.studio.jobs import BASE_BYTES
    budget = int(BASE_BYTES / 0.6)
    with start_server(tmp_path, workers=2, memory_budget=budget) as s:
        c = Client(s.url)
        first = c.submit("fake-opt", {"hold": True, "steps": 2}, content=flat_png(),
                         styles=[flat_png()])[2]
        second = c.submit("fake-opt", {"steps": 2}, content=flat_png(), styles=[flat_png()])[2]
        c.wait(first["id"], until=("running",))
        time.sleep(0.5)
        assert c.get(f"/api/jobs/{second['id']}")[2]["status"] == "queued"
        GATE.set()
        assert c.wait(second["id"])["status"] == "done"


def test_cancel_stops_a_one_pass_job_between_tiles(client):
    job = client.submit("fake-tiled", content=flat_png(), styles=[flat_png()])[2]
    client.wait(job["id"], until=("running",))
    time.sleep(0.3)
    t = time.monotonic()
    assert client.json("POST", f"/api/jobs/{job['id']}/cancel")[0] == 200
    done = client.wait(job["id"], timeout=30)
    assert done["status"] == "cancelled" and not done["partial"]
    assert time.monotonic() - t < 2.0
    assert 0 < FakeTiled.tiles_done < 40  # 256 tiles would take 13 s


def test_ctrl_c_during_a_one_pass_job_stops_cleanly(tmp_path):
    """Ctrl-C while adain runs a large pass: the pass stops at its next layer, the job is
    recorded as interrupted and the server exits 0 (no abort from a torn-down thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc, url = _start_cli(tmp_path / "store", env)
    try:
        c = Client(url)
        status, _, job = c.submit("adain", {"size": 2048}, content=photo_png(1024),
                                  styles=[flat_png(side=256)])
        assert status == 202, job
        c.wait(job["id"], until=("running",), timeout=60)
        time.sleep(1.0)
    finally:
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert code == 0 and "terminate called" not in err and "stopped" in out, (code, err)
    assert time.monotonic() - t < 20
    record = json.loads((tmp_path / "store" / "jobs" / job["id"] / "job.json").read_text())
    assert record["status"] == "failed" and record["interrupted"]


def test_stored_inputs_stay_near_the_upload_size_and_old_jobs_are_capped_by_bytes(tmp_path):
    from skimage import data
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG", quality=90)
    photo = buf.getvalue()
    with start_server(tmp_path, keep_bytes=1) as s:
        c = Client(s.url)
        ids = []
        for seed in (1, 2, 3):
            job = c.submit("fake-onepass", {"seed": seed}, content=photo, styles=[flat_png()])[2]
            ids.append(job["id"])
            assert c.wait(job["id"])["status"] == "done"
        stored = s.config.data_dir / "jobs" / ids[-1] / "inputs"
        content = [p for p in stored.iterdir() if p.name.startswith("content")]
        assert [p.suffix for p in content] == [".jpg"]
        assert content[0].stat().st_size <= 2 * len(photo)
        status, headers, body = c.request("GET", f"/api/jobs/{ids[-1]}/inputs/content.jpg")
        assert status == 200 and headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(body)).size == (512, 512)
        # over keep_bytes: only the newest finished job is kept
        assert [p.name for p in job_dirs(s.config.data_dir)] == [ids[-1]]
        assert c.get("/api/status")[2]["queue"]["jobs"] == 1


def test_uploads_leave_pillows_bomb_guard_alone(client, monkeypatch):
    from PIL import ImageOps

    from restyle.studio import uploads
    seen = []
    real = ImageOps.exif_transpose

    def spy(img, *a, **k):
        seen.append(Image.MAX_IMAGE_PIXELS)
        return real(img, *a, **k)

    monkeypatch.setattr(uploads.ImageOps, "exif_transpose", spy)
    before = Image.MAX_IMAGE_PIXELS
    job = client.submit("fake-opt", content=flat_png(), styles=[flat_png()])[2]
    client.wait(job["id"])
    assert seen and all(v == before for v in seen)
