"""``restyle bench``, ``compare``, ``evaluate`` and ``studio``: their parsers live with
their modules (restyle/evaluate/, restyle/studio/)."""

from __future__ import annotations

from typing import Sequence

from ..evaluate.bench import main as cmd_bench  # noqa: F401
from ..evaluate.compare import main as cmd_compare  # noqa: F401
from ..evaluate.metrics import main as cmd_evaluate  # noqa: F401


def cmd_studio(argv: Sequence[str]) -> int:
    # lazy: FastAPI and uvicorn (an optional extra) load only for `restyle studio`
    from ..studio import main as studio_main
    return studio_main(argv)
