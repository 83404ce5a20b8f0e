"""What the studio offers, read from the method registry and the models folder.

Every registered method appears with its typed parameters
(:func:`restyle.params.describe`), so the web form is generated from the same
dataclass as the CLI flags, and with the inputs it declares
(:class:`restyle.methods.Takes`: a content image required, optional or none; styles as
images, names in a trained model, or none). Parameters act by their declared kind
(:data:`restyle.params.KINDS`), never by their names:

* **mask**, **map** and **field** parameters are images the client uploads as file parts
  named after the field; the server passes the stored files' paths. A ``per_style`` one
  takes one image per style, comma-separated in style order (as ``--masks M1,M2``); ``on``
  says whether it is painted on the style images or the content photo. Masks are white
  inside; maps label regions by colour; a stroke field is a direction per pixel painted
  in colour (hue = direction, see :mod:`restyle.stroke`). Lower-case words of such a
  parameter's metavar (``etf`` in ``etf|FIELD``) may be sent as plain values instead;
* **path** and **image** parameters name a file on the server's machine (weights, a
  decoder, a model; an init image). The studio accepts only their built-in values (the
  lower-case words of the metavar, such as ``content|noise`` or ``hed``, and installed
  model names where it says NAME) unless it was started with ``--allow-server-paths``;
  an **image** parameter may instead be uploaded, as a file part named after the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import RestyleError
from ..methods import all_methods, get_method
from ..nets.stylenet import installed_models, models_dir, read_stylenet_metadata
from ..params import UPLOAD_KINDS, describe, keywords

#: Parameters shown first in the form; the rest go under "Advanced".
PRIMARY = ("model", "size", "iterations", "strength", "style_scale", "scale",
           "style_size", "preserve_color", "tileable", "auto")


def is_mask_field(d: dict[str, Any]) -> bool:
    """A parameter whose value is an uploaded image: a mask, a semantic map, a field."""
    return d.get("kind") in UPLOAD_KINDS


def is_path_field(d: dict[str, Any]) -> bool:
    """A parameter naming a file on the server (weights, a model; an init image)."""
    return d.get("kind") in ("path", "image")


def path_choices(d: dict[str, Any]) -> list[str]:
    """The values a path parameter may take without server paths: its default, the
    lower-case words of its metavar (``content|noise|PATH`` -> content, noise) and, where
    the metavar says NAME, the installed style networks."""
    words = [w for w in str(d.get("metavar") or "").split("|") if re.fullmatch(r"[a-z0-9_-]+", w)]
    if "NAME" in str(d.get("metavar") or ""):
        words += [m["name"] for m in models()["models"]]
    return list(dict.fromkeys([*([d["default"]] if d.get("default") else []), *words]))


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
        d["path"] = is_path_field(d)
        d["upload"] = d.get("kind") == "image"  # may be sent as a file part
        if d["mask"]:
            d["keywords"] = keywords(d.get("metavar"))
        d["primary"] = d["name"] in PRIMARY
        params.append(d)
    takes = cls.takes
    return {
        "name": cls.name,
        "family": cls.family,
        "task": cls.task,
        "style_kind": "name" if takes.styles == "names" else "image",
        "summary": cls.summary,
        "live_preview": cls.iterates(),
        "params": params,
        "mask_fields": [d["name"] for d in params if d["mask"]],
        # image path parameters that may be uploaded as file parts (stored like masks)
        "upload_fields": [d["name"] for d in params if d["upload"]],
        "masks": [{"name": d["name"], "kind": d["kind"], "per_style": bool(d["per_style"]),
                   "on": d["on"], "help": d.get("help", "")} for d in params if d["mask"]],
        # why the studio cannot run this method (None: it can; every declared input can
        # be sent)
        "unavailable": None,
        # what the form asks for, as the method declares it: a content image ("content" /
        # "image"; "content_required": False when it may be left out), style images
        # ("style" / "exemplar") or, for style_kind "name", style names of a model
        "inputs": {"content": None if takes.content == "none" else takes.content_word,
                   "styles": None if takes.styles == "none" else takes.style_word},
        "content_required": takes.content == "required",
    }


def methods() -> list[dict[str, Any]]:
    return [method_info(cls) for cls in all_methods()]


def mask_fields(method: str) -> list[str]:
    return method_info(type(get_method(method)))["mask_fields"]


def models() -> dict[str, Any]:
    """Installed style networks with their style names (for ``style_kind == "name"``)."""
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
