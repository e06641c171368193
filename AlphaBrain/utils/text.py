"""Naming rules shared by training streams and evaluation suites (no heavy imports)."""

from __future__ import annotations

import re
from typing import Any

from AlphaBrain.utils.errors import UserError


def slugify(text: str) -> str:
    """A task's name from its instruction: "Open the drawer!" -> "open_the_drawer".

    Training streams and evaluation suites both name tasks this way, which is
    how an evaluation matrix maps its columns to the training order.
    """
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "task"


def unique_task_names(value: Any, what: str, where: str = "") -> list[str]:
    """`value` as a list of unique, non-empty task names; otherwise a UserError saying which rule it breaks.

    `what` names the list in the message (e.g. "'train_order'"), `where` is prefixed to it (e.g. "<file>: ").
    """
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"{where}{what} must be a list of non-empty task names (strings), got {value!r:.200}.")
    seen: set[str] = set()
    dups = sorted({v for v in value if v in seen or seen.add(v)})
    if dups:
        raise UserError(f"{where}{what} names a task more than once: {', '.join(dups)}. Task names must be unique.")
    return list(value)
