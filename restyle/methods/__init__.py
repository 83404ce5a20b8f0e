"""The method registry: one small module per method of the survey.

A method is a :class:`Method` subclass with a ``name``, a ``family``
("image-optimization" or "model-optimization"), a ``task`` ("transfer",
"texture", "dream"; the ``restyle`` command and the API function it runs under),
what it :class:`Takes` (a content image: required, optional or none; styles as
images, as names in a trained model, or none), a typed ``Params`` dataclass whose
fields declare their kind (mask, map, path, size, ...: :func:`restyle.params.param`)
and ``run()``. Registering it with :func:`register` makes it appear in the CLI, the
Python API, the studio, batch, video and the benchmarks at once: they read these
declarations through :mod:`restyle.run` and never branch on a method's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

import torch
from PIL import Image

from ..errors import RestyleError
from ..optimize import Progress


@dataclass
class Inputs:
    """What a method receives: loaded RGB images and blend weights."""

    content: Image.Image | None
    styles: list[Image.Image]
    style_weights: list[float]
    #: for methods whose styles are names inside a trained model (``takes.styles == "names"``);
    #: for the others the styles' file names where they came from files ("" otherwise)
    style_names: list[str] = field(default_factory=list)


CONTENT = ("required", "optional", "none")
STYLES = ("images", "names", "none")


@dataclass(frozen=True)
class Takes:
    """What a method takes besides its parameters (front ends ask for exactly this)."""

    #: a content image: "required", "optional" (e.g. a doodle painted from its map) or "none"
    content: str = "required"
    #: "images" (style images, or exemplars), "names" (styles inside a trained model) or "none"
    styles: str = "images"
    #: what the content and the style images are called in messages and forms
    content_word: str = "content"
    style_word: str = "style"

    def __post_init__(self):
        if self.content not in CONTENT or self.styles not in STYLES:
            raise ValueError(f"Takes(content={self.content!r}, styles={self.styles!r}): content "
                             f"is one of {CONTENT}, styles one of {STYLES}")


class Method(ABC):
    name: ClassVar[str]
    family: ClassVar[str]
    task: ClassVar[str] = "transfer"
    #: the inputs it takes (default: a content photo and style images)
    takes: ClassVar[Takes] = Takes()
    summary: ClassVar[str]
    Params: ClassVar[type]

    @classmethod
    def iterates(cls) -> bool:
        """Whether it reports a :class:`~restyle.optimize.Progress` after every iteration
        (and keeps its current image when stopped): the image-optimization family."""
        return cls.family == "image-optimization"

    @abstractmethod
    def run(self, inputs: Inputs, params, callbacks: Sequence[Callable[[Progress], None]] = ()
            ) -> torch.Tensor:
        """Produce the output image as a (1, 3, H, W) tensor in [0, 1]."""


REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def get_method(name: str) -> Method:
    _load_builtin()
    if name not in REGISTRY:
        raise RestyleError(f"unknown method {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]()


def all_methods() -> list[type[Method]]:
    _load_builtin()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def parse_settings(specs: Sequence[str], methods: Sequence[str], role: str = "chosen"
                   ) -> dict[str, dict]:
    """``--set METHOD.PARAM=VALUE`` options as ``{method: {param: typed value}}``, for
    commands that run several methods (``restyle compare``, ``restyle bench``)."""
    overrides: dict[str, dict] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        method, dot, param = key.partition(".")
        if not sep or not dot:
            raise RestyleError(f"--set takes METHOD.PARAM=VALUE, not {spec!r}")
        if method not in methods:
            raise RestyleError(f"--set {spec}: {method!r} is not among the {role} methods")
        fields = get_method(method).Params.__dataclass_fields__
        if param not in fields:
            raise RestyleError(f"{method} has no parameter {param!r}")
        kind = fields[param].type
        try:
            typed = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true", "yes")
                     }.get(kind if isinstance(kind, str) else kind.__name__, str)(value)
        except ValueError:
            raise RestyleError(f"--set {spec}: {value!r} is not a valid {kind}") from None
        overrides.setdefault(method, {})[param] = typed
    return overrides


def _load_builtin() -> None:
    from . import adain, analogy, anytime, dream, gatys, mgan, mrf, network, portilla, portrait, style_swap, texture, wct  # noqa: F401  (registration side effect)
