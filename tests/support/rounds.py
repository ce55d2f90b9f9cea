"""How many times a repeated test goes round: a few under `make test`, many under
`make soak` (which sets YWF_SOAK=1)."""

from __future__ import annotations

import os


def rounds(quick: int, soak: int) -> int:
    """``quick`` repetitions in `make test`, ``soak`` in `make soak`."""
    return soak if os.environ.get("YWF_SOAK") else quick
