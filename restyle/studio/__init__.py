"""restyle studio: a web app with live preview, and an HTTP API with a job queue.

``restyle studio`` serves a page where every registered method can be run from the
browser (parameters as form controls generated from the method's typed ``Params``,
live previews of optimization methods, cancel, comparison, download), and the
documented HTTP API the page itself uses (``/openapi.json``).

Needs the optional dependencies: ``pip install 'restyle[studio]'`` (FastAPI, uvicorn,
python-multipart). See docs/studio.md.
"""

from __future__ import annotations

from ..errors import RestyleError

try:
    from .app import StudioConfig, create_app
    from .server import StudioServer, main
except ModuleNotFoundError as e:  # the optional extra is not installed
    if e.name not in ("fastapi", "uvicorn", "multipart", "python_multipart", "starlette",
                      "pydantic"):
        raise
    _missing = e.name

    def _need_extra(*args, **kwargs):
        raise RestyleError(f"the studio needs its optional dependencies ({_missing} is "
                           "missing): pip install 'restyle[studio]'")

    StudioConfig = create_app = StudioServer = main = _need_extra  # type: ignore[assignment,misc]

__all__ = ["StudioConfig", "StudioServer", "create_app", "main"]
