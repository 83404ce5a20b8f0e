"""Typed parameter sets: one dataclass per method, from which the CLI flags, the
``restyle methods`` listing (and later web forms) are generated.

Declare a field with :func:`param` to give it help text, allowed choices and a
range; :func:`validate` checks an instance against them with one-line errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from .errors import RestyleError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line: a mistake raises RestyleError, which every
    ``restyle`` command prints as ``restyle: error: ...`` with exit code 2."""

    def error(self, message: str):
        raise RestyleError(f"{self.prog}: {message} (see {self.prog} --help)")


def param(default: Any, help: str, choices: typing.Sequence | None = None,
          min: float | None = None, max: float | None = None, metavar: str | None = None,
          aliases: typing.Sequence[str] = (), check: typing.Callable | None = None):
    """A dataclass field with the metadata the CLI and docs are generated from.

    ``aliases`` are other names accepted for it, as flags and as keyword arguments
    (e.g. the papers' ``alpha`` for ``strength``). ``check(value)`` is the field's own
    parser, run by :func:`validate` (so when parameters are given, not when they are
    used): it raises RestyleError for a value it cannot use."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": tuple(choices) if choices else None,
        "min": min, "max": max, "metavar": metavar, "aliases": tuple(aliases) or None,
        "check": check})


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
