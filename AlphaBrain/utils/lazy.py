"""Package attributes imported on first use (a package's `__getattr__`, PEP 562).

A package whose names live in heavy modules (a simulator, torch) can list them without
importing those modules: `python -m pkg.module` must not find the module already imported by
its package, and light clients must not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `package.<where[name]>` and returns its `name`."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
