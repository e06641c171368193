"""What the simulator environments (LiberoEnv, MetaWorldEnv) share: being closed at the end of a `with`
block, and when garbage-collected."""

from __future__ import annotations

from typing import TypeVar

_Env = TypeVar("_Env", bound="ClosingEnv")


class ClosingEnv:
    """Base of a simulator env: `with Env(...) as env:` closes it at the end, and so does garbage
    collection (where errors while closing are swallowed). Subclasses define `close()`, safe to call twice."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Env) -> _Env:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
