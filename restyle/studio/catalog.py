"""What the studio offers, read from the method registry and the models folder.

Every registered method appears with its typed parameters
(:func:`restyle.params.describe`), so the web form is generated from the same
dataclass as the CLI flags. Two conventions extend the plain parameter types:

* a **mask parameter** is a ``str`` field named ``mask``/``masks`` or ending with
  ``_mask``/``_masks`` (or whose metavar mentions MASK), and likewise a semantic
  **map** (``map``/``maps``, ``_map``/``_maps``): the client uploads images for it as
  file parts named after the field, and the server passes the stored files' paths. A
  plural name takes one image per style, comma-separated in style order (as
  ``--masks M1,M2``); a name starting with ``style_`` is painted on the style images,
  any other on the content photo. Masks are white inside; maps label regions by colour;
  a **field** (``field``, ``_field``) is a direction per pixel painted in colour (hue =
  direction, see :mod:`restyle.stroke`). Lower-case words of such a parameter's
  metavar (``etf`` in ``etf|FIELD``) may be sent as plain values instead of an image;
* a **path parameter** is a ``str`` field whose metavar mentions PATH, DIR or URL (an
  init image, a decoder or weights file): it names a file on the server's machine. The
  studio accepts only its built-in values (the lower-case words of its metavar, such as
  ``content|noise`` or ``hed``, and installed model names where it says NAME) unless it
  was started with ``--allow-server-paths``; an **image path** (``init``) may instead be
  uploaded, as a file part named after the field.

Which images a task takes is read from its API function (``restyle.api.<task>``,
e.g. ``transfer(content, style)``, ``texture(exemplar)``, ``dream(image)``), so a new
task with its API function appears here without changes.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

from ..errors import RestyleError
from ..methods import all_methods, get_method
from ..params import describe

#: Parameters shown first in the form; the rest go under "Advanced".
PRIMARY = ("model", "size", "iterations", "strength", "style_scale", "scale",
           "style_size", "preserve_color", "tileable", "auto")


MASK_NAMES = ("mask", "masks")
MAP_NAMES = ("map", "maps")
FIELD_NAMES = ("field",)


def is_mask_field(d: dict[str, Any]) -> bool:
    """A parameter whose value is an uploaded image: a mask, or a semantic map."""
    name, metavar = d["name"], str(d.get("metavar") or "")
    return d["type"] == "str" and (
        name in MASK_NAMES + MAP_NAMES + FIELD_NAMES
        or name.endswith(tuple(f"_{n}" for n in MASK_NAMES + MAP_NAMES + FIELD_NAMES))
        or "MASK" in metavar.upper())


def mask_kind(name: str) -> str:
    """"map" for semantic maps (colours label regions), "field" for direction fields
    (hue is a direction), else "mask" (white is inside)."""
    if name.endswith(FIELD_NAMES):
        return "field"
    return "map" if name.endswith(MAP_NAMES) else "mask"


def keywords(d: dict[str, Any]) -> list[str]:
    """Plain values an image parameter also takes: the lower-case words of its metavar
    (``etf`` of ``etf|FIELD``)."""
    return [w for w in str(d.get("metavar") or "").split("|") if w and w.islower()]


def is_path_field(d: dict[str, Any]) -> bool:
    metavar = str(d.get("metavar") or "").upper()
    return d["type"] == "str" and any(w in metavar for w in ("PATH", "DIR", "URL"))


IMAGE_PATHS = ("init",)


def is_image_path_field(d: dict[str, Any]) -> bool:
    """A path parameter that names an image (an init image): it may be uploaded."""
    return is_path_field(d) and (d["name"] in IMAGE_PATHS or d["name"].endswith("_image"))


def path_choices(d: dict[str, Any]) -> list[str]:
    """The values a path parameter may take without server paths: its default, the
    lower-case words of its metavar (``content|noise|PATH`` -> content, noise) and, where
    the metavar says NAME, the installed style networks."""
    words = [w for w in str(d.get("metavar") or "").split("|") if re.fullmatch(r"[a-z0-9_-]+", w)]
    if "NAME" in str(d.get("metavar") or ""):
        words += [m["name"] for m in models()["models"]]
    return list(dict.fromkeys([*([d["default"]] if d.get("default") else []), *words]))


def task_inputs(task: str) -> dict[str, Any]:
    """Which images a task's API function takes: ``content`` (one image: "content",
    "image" or "photo"), ``styles`` ("style" or "exemplar", one or several), and the
    keyword of their blend weights."""
    from .. import api
    fn = getattr(api, task, None)
    if fn is None or not callable(fn):
        raise RestyleError(f"task {task!r} has no API function restyle.api.{task}")
    sig = inspect.signature(fn)
    positional = [p.name for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    content = next((n for n in positional if n in ("content", "image", "photo")), None)
    styles = next((n for n in positional if n in ("style", "styles", "exemplar", "exemplars")),
                  None)
    weights = next((n for n in sig.parameters if n.endswith("_weights")), None)
    return {"content": content, "styles": styles, "weights": weights,
            "positional": positional, "function": fn}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def method_info(cls) -> dict[str, Any]:
    params = []
    for d in describe(cls.Params):
        d = {k: _jsonable(v) for k, v in d.items()}
        d["mask"] = is_mask_field(d)
        d["path"] = is_path_field(d) and not d["mask"]
        d["upload"] = d["path"] and is_image_path_field(d)  # may be sent as a file part
        if d["mask"]:
            d["keywords"] = keywords(d)
        d["primary"] = d["name"] in PRIMARY
        params.append(d)
    try:
        io = task_inputs(cls.task)
        unavailable = None
        unknown = [n for n in io["positional"] if n not in (io["content"], io["styles"])]
        if unknown:
            unavailable = (f"the studio does not know what to send as {', '.join(unknown)} "
                           f"of restyle.api.{cls.task}")
    except RestyleError as e:
        io, unavailable = {"content": None, "styles": None}, str(e)
    return {
        "name": cls.name,
        "family": cls.family,
        "task": cls.task,
        "style_kind": getattr(cls, "style_kind", "image"),
        "summary": cls.summary,
        "live_preview": cls.family == "image-optimization",
        "params": params,
        "mask_fields": [d["name"] for d in params if d["mask"]],
        # image path parameters that may be uploaded as file parts (stored like masks)
        "upload_fields": [d["name"] for d in params if d["upload"]],
        "masks": [{"name": d["name"], "kind": mask_kind(d["name"]),
                   "per_style": d["name"].endswith(("masks", "maps")),
                   "on": "style" if d["name"].startswith("style_") else "content",
                   "help": d.get("help", "")} for d in params if d["mask"]],
        # why the studio cannot run this method (None: it can)
        "unavailable": unavailable,
        # what the form asks for: a content image ("content"/"image"), style images
        # ("style"/"exemplar") or, for style_kind "name", style names of a model
        "inputs": {"content": io["content"], "styles": io["styles"]},
    }


def methods() -> list[dict[str, Any]]:
    return [method_info(cls) for cls in all_methods()]


def mask_fields(method: str) -> list[str]:
    return method_info(type(get_method(method)))["mask_fields"]


def models() -> dict[str, Any]:
    """Installed style networks with their style names (for ``style_kind == "name"``)."""
    from ..nets.stylenet import installed_models, models_dir, read_stylenet_metadata
    out = []
    for name, path in installed_models().items():
        try:
            meta = read_stylenet_metadata(path)
            styles = json.loads(meta.get("styles", "[]"))
        except (RestyleError, ValueError):
            continue
        out.append({"name": name, "styles": styles, "steps": meta.get("steps")})
    return {"folder": str(models_dir()), "models": out}


def model_styles(model: str) -> list[str] | None:
    """The style names of an installed model, or None when it cannot be read here."""
    for m in models()["models"]:
        if m["name"] == model:
            return list(m["styles"])
    return None
