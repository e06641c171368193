"""Simulated benchmarks: environments, scripted experts, demo generation, evaluation suites.

    from AlphaBrain.benchmarks import get_suite
    suite = get_suite("metaworld_cl5")

Importing this package never imports a simulator; `make_env` does.
"""

from AlphaBrain.benchmarks.registry import SUITES, get_suite, list_suites, register_suite
from AlphaBrain.benchmarks.suite_types import Suite, SuiteTask

__all__ = ["SUITES", "Suite", "SuiteTask", "get_suite", "list_suites", "register_suite"]
