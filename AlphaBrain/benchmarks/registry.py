"""Evaluation suites by name: the simulated task sets a continual-learning run is evaluated on.

    suite = get_suite("metaworld_cl5")
    env = suite.make_env(suite.tasks[0].name, image_size=(64, 64))
    obs = env.reset(suite.eval_seed(task_index=0, trial=0))

What a suite is, and the protocol of the environments it makes: suite_types.py.

Adding a benchmark = one factory per suite name in SUITES
(or `register_suite(name, factory)`): a zero-argument callable returning a `Suite`.
Factories import their simulator lazily, so listing suites never imports MuJoCo.
"""

from __future__ import annotations

from typing import Callable

from AlphaBrain.benchmarks.suite_types import Suite, SuiteTask
from AlphaBrain.utils.errors import unknown_name

__all__ = ["SUITES", "Suite", "SuiteTask", "get_suite", "list_suites", "register_suite"]


def _metaworld(stream: str) -> Callable[[], Suite]:
    def factory() -> Suite:
        from AlphaBrain.benchmarks.metaworld.suite import metaworld_suite

        return metaworld_suite(stream)

    return factory


def _synthetic_push() -> Suite:
    from AlphaBrain.benchmarks.synthetic_push import synthetic_push_suite

    return synthetic_push_suite(num_tasks=3, episode_length=40)


def _libero(name: str) -> Callable[[], Suite]:
    def factory() -> Suite:
        from AlphaBrain.benchmarks.libero.suite import libero_suite

        return libero_suite(name)

    return factory


def _builtin() -> dict[str, Callable[[], Suite]]:
    from AlphaBrain.benchmarks.libero.tasks import suite_names as libero_suite_names
    from AlphaBrain.benchmarks.metaworld.tasks import METAWORLD_STREAMS

    return {
        **{name: _metaworld(name) for name in METAWORLD_STREAMS},
        **{name: _libero(name) for name in libero_suite_names()},
        "synthetic_push3": _synthetic_push,
    }


# suite name -> zero-argument factory.
SUITES: dict[str, Callable[[], Suite]] = _builtin()


def register_suite(name: str, factory: Callable[[], Suite], *, overwrite: bool = False) -> None:
    """Add a suite factory; an existing name is an error unless `overwrite`."""
    if name in SUITES and not overwrite:
        raise ValueError(f"suite {name!r} is already registered (pass overwrite=True to replace it)")
    SUITES[name] = factory


def list_suites() -> list[str]:
    return sorted(SUITES)


def get_suite(name: str) -> Suite:
    """The suite registered as `name`; an unknown name lists the valid ones."""
    if name not in SUITES:
        raise unknown_name("suite", name, SUITES)
    suite = SUITES[name]()
    if suite.name != name:
        raise ValueError(f"suite factory for {name!r} returned a suite named {suite.name!r}")
    return suite
