"""Every registered method through every front end, from the registry's declarations
alone (as timm tests every registered model): the Python API, the ``restyle`` command,
the studio's HTTP API and batch, on tiny images with tiny budgets. Each output must exist,
have the size the parameters ask for and differ from the content.

The tiny settings are derived from the parameter declarations (every ``size`` field gets a
48 px long side, every ``canvas`` 48x48; iteration counts and budgets their smallest
useful values), so a new method is covered without editing this file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from restyle import api, imaging
from restyle.batch import run_batch
from restyle.cli import main
from restyle.errors import RestyleError
from restyle.methods import all_methods
from restyle.nets.stylenet import get_stylenet
from restyle.methods.network import default_model
from restyle.params import fields_of_kind

pytest.importorskip("fastapi")
from restyle.studio import StudioConfig, StudioServer  # noqa: E402

from .test_studio import Client  # noqa: E402

SIDE = 48
#: the smallest useful value of parameters that set the amount of work, where a method has them
SMALL = {"iterations": 5, "deconv_iterations": 2, "min_size": 0, "budget": 0.5, "octaves": 1,
         "n_scales": 2}

METHODS = [m.name for m in all_methods()]


def tiny(cls) -> dict:
    """Tiny settings for a method, from its parameter declarations."""
    out = {}
    fields = {f.name: f for f in dataclasses.fields(cls.Params)}
    for f in fields_of_kind(cls.Params, "size"):
        out[f.name] = max(SIDE, f.metadata.get("min") or 0)
    for f in fields_of_kind(cls.Params, "canvas"):
        out[f.name] = f"{SIDE}x{SIDE}"
    for name, value in SMALL.items():
        if name in fields:
            lo = fields[name].metadata.get("min")
            out[name] = max(value, lo) if lo is not None else value
    return out


def expected_size(cls, params: dict, content: Image.Image | None) -> tuple[int, int]:
    if fields_of_kind(cls.Params, "canvas"):
        return (SIDE, SIDE)
    side = next(iter(params[f.name] for f in fields_of_kind(cls.Params, "size")))
    return imaging.fit_size(*content.size, side)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from skimage import data
    root = tmp_path_factory.mktemp("every")
    # not square (the aspect is kept), a face large enough to find (portrait)
    photo = Image.fromarray(data.astronaut()).crop((0, 32, 512, 416)).resize((160, 120))
    # the "painting": the photo mirrored and tinted, so it has a face too
    style = ImageOps.mirror(Image.fromarray(
        (np.asarray(photo, np.float32) * [1.0, 0.7, 0.4]).astype(np.uint8)))
    photo.save(root / "photo.png")
    style.save(root / "style.png")
    return root


def inputs_for(cls, files: Path):
    """(content path or None, styles: paths or names) as the method declares."""
    takes = cls.takes
    content = None if takes.content == "none" else files / "photo.png"
    if takes.styles == "names":
        styles = [get_stylenet(default_model()).styles[0]]
    elif takes.styles == "images":
        styles = [files / "style.png"]
    else:
        styles = []
    return content, styles


def check(image: Image.Image, cls, params, files: Path, where: str) -> None:
    content = imaging.load_image(files / "photo.png", "content")
    assert image.size == expected_size(cls, params, content), where
    a = np.asarray(imaging.resize(content, image.size), np.float32)
    b = np.asarray(image.convert("RGB"), np.float32)
    assert np.abs(a - b).mean() > 2.0, f"{where}: the output is the content"


def flags(params: dict) -> list[str]:
    return [x for k, v in params.items() for x in ("--" + k.replace("_", "-"), str(v))]


@pytest.mark.parametrize("name", METHODS)
def test_every_method_through_every_front_end(name, files, tmp_path):
    cls = next(m for m in all_methods() if m.name == name)
    params = tiny(cls)
    content, styles = inputs_for(cls, files)

    # the Python API: the task's function
    call = {"transfer": lambda **kw: api.transfer(content, styles, **kw),
            "texture": lambda **kw: api.texture(styles, **kw),
            "dream": lambda **kw: api.dream(content, **kw)}[cls.task]
    try:
        image = call(method=name, output=tmp_path / "api.png", **params)
    except RestyleError as e:
        if "train" in str(e):  # a method whose model is trained per style, none shipped
            pytest.skip(f"{name}: {e}")
        raise
    check(image, cls, params, files, "api")
    check(Image.open(tmp_path / "api.png"), cls, params, files, "api file")

    # the command line
    argv = [cls.task, *([str(content)] if content else []), *map(str, styles),
            "--method", name, "-o", str(tmp_path / "cli.png"), "-q", *flags(params)]
    assert main(argv) == 0
    check(Image.open(tmp_path / "cli.png"), cls, params, files, "cli")

    # the studio's HTTP API
    server = StudioServer(StudioConfig(data_dir=tmp_path / "studio",
                                       preview_interval=0.0)).start()
    try:
        client = Client(server.url)
        status, _, job = client.submit(
            name, params, content=content.read_bytes() if content else None,
            styles=[Path(s).read_bytes() for s in styles] if cls.takes.styles == "images"
            else [], names=styles if cls.takes.styles == "names" else None)
        assert status == 202, job
        job = client.wait(job["id"], timeout=120)
        assert job["status"] == "done", job
        status, _, body = client.request("GET", f"/api/jobs/{job['id']}/result")
        assert status == 200
        (tmp_path / "studio.png").write_bytes(body)
    finally:
        server.stop()
    check(Image.open(tmp_path / "studio.png"), cls, params, files, "studio")

    # batch: transfer methods over a folder (the others are refused in one line)
    if cls.task != "transfer":
        with pytest.raises(RestyleError, match="needs a transfer method"):
            run_batch([files / "photo.png"], tmp_path / "batch", styles, method=name, **params)
        return
    summary = run_batch([files / "photo.png"], tmp_path / "batch", [str(s) for s in styles],
                        method=name, workers=1, **params)
    assert summary.done == 1 and summary.failed == 0, summary.errors
    check(Image.open(tmp_path / "batch" / "photo.png"), cls, params, files, "batch")
