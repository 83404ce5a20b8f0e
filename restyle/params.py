"""Typed parameter sets: one dataclass per method, from which the CLI flags, the
``restyle methods`` listing (and later web forms) are generated.

Declare a field with :func:`param` to give it help text, allowed choices, a
range and its kind (what its value stands for: a mask, a semantic map, a file
path, a size, ...); :func:`validate` checks an instance against them with one-line
errors. Parameters that many methods share (``size``, ``precision``, ``seed``) are
declared once here (:func:`size_param`, :func:`precision_param`,
:func:`seed_param`) and composed into each method's dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from .errors import RestyleError
from .imaging import MAX_SIDE


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line: a mistake raises RestyleError, which every
    ``restyle`` command prints as ``restyle: error: ...`` with exit code 2."""

    def error(self, message: str):
        raise RestyleError(f"{self.prog}: {message} (see {self.prog} --help)")


#: What a parameter's value stands for (``param(kind=...)``); front ends act on it:
#:
#: * ``mask``, ``map``, ``field``: images painted for the content (or, with ``on="style"``,
#:   the style images; ``per_style``: one per style, comma-separated in style order): a
#:   mask is white inside, a semantic map labels regions by colour, a stroke field is a
#:   direction per pixel (hue). The studio takes them as uploaded file parts; lower-case
#:   words of the metavar (``etf`` in ``etf|FIELD``) are plain values they also take.
#: * ``image``: the path of an image (an init image); may be uploaded like a mask.
#: * ``path``: a file on this machine (weights, a decoder, a model; ``NAME`` in the
#:   metavar: or the name of an installed one). Batch hashes the files these name.
#: * ``size``: the long side of the output in pixels; ``canvas``: an output of its own
#:   shape, ``WIDTHxHEIGHT`` (textures).
KINDS = ("mask", "map", "field", "image", "path", "size", "canvas")
#: the kinds whose values name files (after their keywords)
FILE_KINDS = ("mask", "map", "field", "image", "path")
#: the kinds a client uploads as images
UPLOAD_KINDS = ("mask", "map", "field")


def param(default: Any, help: str, choices: typing.Sequence | None = None,
          min: float | None = None, max: float | None = None, metavar: str | None = None,
          aliases: typing.Sequence[str] = (), check: typing.Callable | None = None,
          kind: str | None = None, on: str = "content", per_style: bool = False):
    """A dataclass field with the metadata the CLI and docs are generated from.

    ``aliases`` are other names accepted for it, as flags and as keyword arguments
    (e.g. the papers' ``alpha`` for ``strength``). ``check(value)`` is the field's own
    parser, run by :func:`validate` (so when parameters are given, not when they are
    used): it raises RestyleError for a value it cannot use. ``kind`` says what the
    value stands for (one of :data:`KINDS`); for masks and maps ``on`` ("content" or
    "style") says which image they are painted on and ``per_style`` that there is one
    per style image."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"parameter kind {kind!r} is not one of {KINDS}")
    if on not in ("content", "style"):
        raise ValueError(f"on={on!r}: a mask is painted on the content or the style")
    image = kind in UPLOAD_KINDS
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": tuple(choices) if choices else None,
        "min": min, "max": max, "metavar": metavar, "aliases": tuple(aliases) or None,
        "check": check, "kind": kind, "on": on if image else None,
        "per_style": per_style if image else None})


def size_param(default: int = 512, min: int = 16, max: int | None = None,
               help: str = "long side of the output in pixels"):
    """The output's long side: one declaration for every method that has one."""
    return param(default, help, min=min, max=MAX_SIDE if max is None else max, kind="size")


def precision_param(help: str = "bf16 autocast where the CPU supports it, or force one",
                    choices: typing.Sequence[str] = ("auto", "bf16", "fp32")):
    """The arithmetic: bf16 autocast where supported (``auto``), or forced."""
    return param("auto", help, choices=choices)


def seed_param(help: str = "random seed (reproducible output)"):
    """The random seed: a parameter, never global state."""
    return param(0, help, min=0)


def weights_param(help: str = "feature network: 'hed' (embedded VGG16) or a torchvision "
                                   "VGG16/VGG19 .pth path or URL"):
    """Where the VGG weights come from: the embedded VGG16, or a torchvision file."""
    return param("hed", help, metavar="hed|PATH|URL", kind="path")


def fields_of_kind(cls, *kinds: str) -> list[dataclasses.Field]:
    """The fields of a Params dataclass declared with one of ``kinds``."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("kind") in kinds]


def keywords(metavar: str | None) -> list[str]:
    """Plain values a file parameter also takes: the lower-case words of its metavar
    (``content|noise|PATH`` -> content, noise; ``etf|FIELD`` -> etf)."""
    return [w for w in str(metavar or "").split("|") if w and w.islower()]


def resolve_aliases(cls, kwargs: dict) -> dict:
    """``kwargs`` with alias names replaced by the field names; giving both is an error."""
    out = dict(kwargs)
    for f in dataclasses.fields(cls):
        for alias in f.metadata.get("aliases") or ():
            if alias in out:
                if f.name in out:
                    raise RestyleError(f"give {f.name} or its alias {alias}, not both")
                out[f.name] = out.pop(alias)
    return out


def _type_of(cls, f: dataclasses.Field) -> type:
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def describe(cls) -> list[dict]:
    """The parameters of a dataclass as plain dicts (name, type, default, help, ...)."""
    out = []
    for f in dataclasses.fields(cls):
        t = _type_of(cls, f)
        out.append({"name": f.name, "type": getattr(t, "__name__", str(t)), "default": f.default,
                    **{k: v for k, v in f.metadata.items() if v is not None and k != "check"}})
    return out


def validate(p) -> None:
    """Check types, choices and ranges declared with :func:`param`; raise RestyleError."""
    for f in dataclasses.fields(p):
        value = getattr(p, f.name)
        t = _type_of(type(p), f)
        flag = "--" + f.name.replace("_", "-")
        if t is bool and not isinstance(value, bool):
            raise RestyleError(f"{flag} must be true or false, not {value!r}")
        if t in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RestyleError(f"{flag} must be a number, not {value!r}")
            if value != value or value in (float("inf"), float("-inf")):  # before int(): NaN
                raise RestyleError(f"{flag} must be a finite number, not {value!r}")
            if t is int and int(value) != value:
                raise RestyleError(f"{flag} must be a whole number, not {value!r}")
        m = f.metadata
        if m.get("choices") and value not in m["choices"]:
            raise RestyleError(f"{flag} must be one of {', '.join(map(str, m['choices']))}, "
                               f"not {value!r}")
        if m.get("min") is not None and value < m["min"]:
            raise RestyleError(f"{flag} must be at least {m['min']}, not {value}")
        if m.get("max") is not None and value > m["max"]:
            raise RestyleError(f"{flag} must be at most {m['max']}, not {value}")
        if m.get("check") is not None:
            m["check"](value)  # the field's own parser (e.g. a WxH size): RestyleError


def make(cls, **overrides):
    """An instance of ``cls`` with ``overrides``; unknown names are a RestyleError."""
    names = {f.name for f in dataclasses.fields(cls)}
    overrides = resolve_aliases(cls, overrides)
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise RestyleError(f"unknown parameter(s) {', '.join(unknown)}; "
                           f"valid: {', '.join(sorted(names))}")
    p = cls(**overrides)
    validate(p)
    return p


def add_arguments(parser: argparse.ArgumentParser, cls, skip: typing.Iterable[str] = ()) -> None:
    """Add one flag per field of ``cls`` (defaults left to the dataclass)."""
    group = parser.add_argument_group(f"{cls.__name__} parameters")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        t = _type_of(cls, f)
        flag = "--" + f.name.replace("_", "-")
        m = f.metadata
        default_text = f" (default: {f.default})" if f.default not in ("", None) else ""
        kw: dict = {"dest": f.name, "default": argparse.SUPPRESS, "help": m.get("help", "") + default_text}
        if t is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = t if t in (int, float) else str
            if m.get("choices"):
                kw["choices"] = m["choices"]
            if m.get("metavar"):
                kw["metavar"] = m["metavar"]
        aliases = ["--" + a.replace("_", "-") for a in m.get("aliases") or ()]
        group.add_argument(flag, *aliases, **kw)


def from_namespace(cls, ns: argparse.Namespace, **extra):
    """Build and validate ``cls`` from parsed arguments (only those the user gave)."""
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(ns).items() if k in names}
    given.update(extra)
    return make(cls, **given)


def parse_layer_weights(spec: str, what: str) -> dict[str, float]:
    """'relu1_1,relu2_1:0.5' -> {'relu1_1': 1.0, 'relu2_1': 0.5}."""
    out: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, w = item.partition(":")
        try:
            out[name.strip()] = float(w) if w else 1.0
        except ValueError:
            raise RestyleError(f"{what}: bad weight in {item!r} (expected name:number)") from None
        if out[name.strip()] < 0:
            raise RestyleError(f"{what}: weights must not be negative ({item!r})")
    if not out:
        raise RestyleError(f"{what}: give at least one layer, e.g. relu4_2")
    return out


def parse_floats(spec: str, what: str) -> list[float]:
    """'0.7,0.3' -> [0.7, 0.3]."""
    try:
        vals = [float(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise RestyleError(f"{what}: expected comma-separated numbers, not {spec!r}") from None
    if any(v < 0 or v != v for v in vals):
        raise RestyleError(f"{what}: weights must be non-negative numbers")
    return vals
