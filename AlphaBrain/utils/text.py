"""Naming rules shared by training streams and evaluation suites (no heavy imports)."""

from __future__ import annotations

import re


def slugify(text: str) -> str:
    """A task's name from its instruction: "Open the drawer!" -> "open_the_drawer".

    Training streams and evaluation suites both name tasks this way, which is
    how an evaluation matrix maps its columns to the training order.
    """
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "task"
