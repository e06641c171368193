"""User-facing errors.

Everything a user can cause (a typo in a YAML key, a missing dataset directory,
a statistics file from another dataset) raises a subclass of `UserError`. Entry
points catch `UserError`, print its one-line message and exit non-zero, so a
typo never ends in a Python traceback. Programming errors stay ordinary
exceptions and keep their tracebacks.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """An error caused by user input; its message says what was wrong and how to fix it."""


class ConfigError(UserError):
    """A bad configuration value or key."""


class DatasetError(UserError):
    """A dataset that is missing, malformed or inconsistent with the run."""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """Return ' Did you mean "x"?' for the closest valid name, or '' when none is close."""
    matches = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f' Did you mean "{matches[0]}"?' if matches else ""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """Build the standard 'unknown X' error that lists every valid choice."""
    valid = sorted(str(v) for v in valid)
    return UserError(
        f'Unknown {kind} "{name}".{did_you_mean(name, valid)} Valid choices: {", ".join(valid)}.'
    )
