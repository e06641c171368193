"""A Meta-World task as a small, deterministic, image-observation environment.

    env = MetaWorldEnv("drawer-open-v3", image_size=(64, 64))
    obs = env.reset(seed=3)                 # layout drawn from the seed
    obs, success, done = env.step(action)   # action: float[4] in [-1, 1] (dx, dy, dz, gripper)
    env.close()

`obs = {"images": [uint8 HxWx3], "state": float32[4], "full_obs": float64[39]}`:
`state` is the hand position and gripper opening (proprioception only); `full_obs` is
Meta-World's raw observation with object and goal poses, for the scripted experts only.

Why not `gymnasium.make("Meta-World/MT1", ...)`:
- MT1 freezes the layout to one of 50 pre-drawn tasks; here every `reset(seed)` draws a
  fresh layout from the seed (Meta-World's own `seeded_rand_vec` path), reproducibly;
- each env owns its OpenGL context and makes it current before *every* render: with
  several envs alive in one process, gymnasium's renderer can otherwise draw into
  another env's context and return a garbage frame without any error;
- fast render settings (no multisampling, shadows or reflections) must be set before the
  GL context exists; with them rendering is several times faster on CPU (bench/bench_metaworld_env.py);
- no gymnasium passive-checker warnings, and contexts are freed before EGL shuts down
  (no `__del__` noise at exit).
"""

from __future__ import annotations

import atexit
import os
import warnings
import weakref
from typing import Any, Optional

os.environ.setdefault("MUJOCO_GL", "egl")  # headless: must be set before mujoco is imported

import numpy as np

from AlphaBrain.benchmarks.metaworld.tasks import task_spec
from AlphaBrain.benchmarks.sim_env import ClosingEnv
from AlphaBrain.utils.errors import UserError, unknown_name

# The corner cameras of Meta-World's scene are mounted upside down: their images are
# rotated by 180 degrees (a vertical *and* horizontal flip; a vertical flip alone would
# mirror the scene left-right).
CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
_UPSIDE_DOWN = {"corner", "corner2", "corner3", "corner4"}
DEFAULT_CAMERA = "corner4"
STATE_NAMES = ["hand_x", "hand_y", "hand_z", "gripper_opening"]
ACTION_NAMES = ["dx", "dy", "dz", "gripper"]
FPS = 80  # Meta-World's metadata["render_fps"]


def _import_sim():
    """Import mujoco + metaworld with a clear error when either is missing or cannot render."""
    try:
        import metaworld  # noqa: F401  (registers the envs)
        import mujoco
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    except ImportError as exc:
        raise UserError(
            f"Meta-World is not installed ({exc}). Install both in ONE command: "
            'pip install "metaworld==3.1.*" "mujoco==3.3.0"'
        ) from exc
    return mujoco, ALL_V3_ENVIRONMENTS


def metaworld_env_names() -> list[str]:
    _, envs = _import_sim()
    return sorted(envs)


# ---------------------------------------------------------------------------- rendering

_LIVE: "weakref.WeakSet[_Renderer]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_live_renderers() -> None:
    # Runs before mujoco.egl's own atexit hook (eglTerminate; atexit is LIFO and this is
    # registered after the first context exists): contexts freed later would print errors.
    for r in list(_LIVE):
        r.close()


_GL_HELP = (
    "Set MUJOCO_GL=egl (or osmesa) before Python imports mujoco, and install the Mesa packages "
    "(Debian: libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6)."
)


def _gl_context_class():
    """MuJoCo's GL context class for MUJOCO_GL; EGL when mujoco was imported before MUJOCO_GL was set."""
    from mujoco import gl_context

    cls = gl_context.GLContext
    headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    if cls is None or (headless and cls.__module__.startswith("mujoco.glfw")):
        # mujoco picked GLFW (MUJOCO_GL was unset when it was imported): no display here, so use EGL.
        try:
            from mujoco.egl import GLContext as cls
        except Exception as exc:  # no libEGL, or PyOpenGL already bound to another platform
            raise UserError(f"MuJoCo has no usable OpenGL backend ({exc}). {_GL_HELP}") from exc
    return cls


class _Renderer:
    """Offscreen renderer with its own GL context, made current before every render."""

    def __init__(self, model, height: int, width: int, camera: str, fast: bool) -> None:
        global _ATEXIT_REGISTERED
        mujoco, _ = _import_sim()
        self._mj = mujoco
        context_class = _gl_context_class()
        if fast:
            model.vis.quality.offsamples = 0  # multisampling: must be off before the context is made
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
            model.vis.global_.offheight = max(height, model.vis.global_.offheight)
        self.model, self.height, self.width = model, height, width
        self.camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if self.camera_id < 0:
            raise unknown_name("Meta-World camera", camera, CAMERAS)
        self.rotate = camera in _UPSIDE_DOWN
        self.scene = mujoco.MjvScene(model, maxgeom=1000)
        self.option = mujoco.MjvOption()
        self.cam = mujoco.MjvCamera()
        self.cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self.cam.fixedcamid = self.camera_id
        if fast:
            for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                         mujoco.mjtRndFlag.mjRND_SKYBOX):
                self.scene.flags[flag] = 0
        self.rect = mujoco.MjrRect(0, 0, width, height)
        self.gl = context_class(width, height)
        try:
            self.gl.make_current()
            self.con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        except Exception as exc:
            self.gl.free()
            self.gl = None
            raise UserError(f"MuJoCo cannot render offscreen here ({exc}). {_GL_HELP}") from exc
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self.con)
        self._buf = np.empty((height, width, 3), dtype=np.uint8)
        _LIVE.add(self)
        if not _ATEXIT_REGISTERED:
            atexit.register(_close_live_renderers)
            _ATEXIT_REGISTERED = True

    def render(self, data) -> np.ndarray:
        mj = self._mj
        if self.gl is None:
            raise RuntimeError("render() after close()")
        self.gl.make_current()  # another env may have made its context current since
        mj.mjv_updateScene(self.model, data, self.option, None, self.cam, mj.mjtCatBit.mjCAT_ALL, self.scene)
        mj.mjr_render(self.rect, self.scene, self.con)
        mj.mjr_readPixels(self._buf, None, self.rect, self.con)
        # OpenGL rows run bottom-up: flip vertically; upside-down cameras need a 180-degree
        # rotation on top, which leaves just a horizontal flip.
        img = self._buf[:, ::-1] if self.rotate else self._buf[::-1]
        return np.ascontiguousarray(img)

    def close(self) -> None:
        if self.gl is None:
            return
        try:
            self.gl.make_current()
            self.con.free()
        finally:
            self.gl.free()
            self.gl, self.con = None, None
            _LIVE.discard(self)


# ---------------------------------------------------------------------------- environment


class MetaWorldEnv(ClosingEnv):
    """One Meta-World task with per-episode randomized layouts and rendered observations.

    Args:
        env_name: a Meta-World v3 environment name, e.g. "drawer-open-v3".
        image_size: (height, width) of the rendered camera image.
        camera: a Meta-World camera (see CAMERAS); corner4 shows the arm and the objects large.
        max_steps: episode limit; default: the task's catalog value (tasks.py), 500 outside the catalog.
        render: False skips rendering (`images` is then an empty list): for experts and benchmarks.
        fast_render: no multisampling, shadows or reflections (False: MuJoCo's default quality).
        instruction: override the catalog instruction.
    """

    def __init__(
        self,
        env_name: str,
        *,
        image_size: tuple[int, int] = (64, 64),
        camera: str = DEFAULT_CAMERA,
        max_steps: Optional[int] = None,
        render: bool = True,
        fast_render: bool = True,
        instruction: Optional[str] = None,
    ) -> None:
        _, envs = _import_sim()
        if env_name not in envs:
            raise unknown_name("Meta-World environment", env_name, envs)
        h, w = (int(image_size), int(image_size)) if np.isscalar(image_size) else map(int, image_size)
        if not (8 <= h <= 1024 and 8 <= w <= 1024):
            raise UserError(f"image_size must be (height, width) with sides in 8..1024, got {image_size!r}")
        if camera not in CAMERAS:
            raise unknown_name("Meta-World camera", camera, CAMERAS)
        spec = task_spec(env_name)
        self.env_name = env_name
        self.instruction = instruction or spec.instruction
        self.max_steps = int(max_steps if max_steps is not None else spec.max_steps)
        if self.max_steps < 1:
            raise UserError(f"max_steps must be >= 1, got {max_steps}")
        self.image_size = (h, w)
        self.camera = camera

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gymnasium/metaworld space-precision warnings
            env = envs[env_name]()  # render_mode=None: gymnasium's renderer (and its contexts) never exists
        # What MT1's set_task does, minus freezing the layout: goal in the observation (the
        # experts need it), and every reset draws the layout from env.np_random.
        env._partially_observable = False
        env.__dict__.pop("sawyer_observation_space", None)  # a cached_property that depends on it
        env._set_task_called = True
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env.max_path_length = self.max_steps
        self._env = env
        self._renderer = _Renderer(env.model, h, w, camera, fast_render) if render else None
        self._steps = 0
        self._done = True
        self._last_seed: Optional[int] = None

    # ------------------------------------------------------------------ API

    @property
    def unwrapped(self):
        """The underlying Meta-World (gymnasium MuJoCo) environment."""
        return self._env

    def reset(self, seed: int) -> dict[str, Any]:
        """Start an episode whose object/goal layout is drawn from `seed` (same seed, same episode)."""
        if self._env is None:
            raise RuntimeError("reset() after close()")
        seed = int(seed)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        env = self._env
        env.seed(seed)
        env._did_see_sim_exception = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full_obs, _ = env.reset()
        self._steps, self._done, self._last_seed = 0, False, seed
        return self._obs(full_obs)

    def step(self, action: np.ndarray, render: bool = True) -> tuple[dict[str, Any], bool, bool]:
        """Execute one action (clipped to [-1, 1]); returns (obs, success, done).

        `done` = success or the step limit reached. Stepping on after a success (to record
        a short tail) is allowed until the step limit; after the limit, call reset().
        `render=False` leaves `obs["images"]` empty: a frame costs ~20x the physics step, and a
        policy that plays a chunk of actions looks only at the frame before its next query.
        """
        if self._env is None:
            raise RuntimeError("step() after close()")
        if self._last_seed is None or self._steps >= self.max_steps:
            raise RuntimeError(f"{self.env_name}: the episode is over ({self._steps}/{self.max_steps} steps); "
                               "call reset(seed) first")
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if action.shape != (4,):
            raise ValueError(f"a Meta-World action has 4 values (dx, dy, dz, gripper), got shape {action.shape}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full_obs, _, _, _, info = self._env.step(action)
        self._steps += 1
        success = bool(info.get("success", False))
        done = success or self._steps >= self.max_steps
        return self._obs(full_obs, render), success, done

    def render(self) -> np.ndarray:
        """The current camera image, uint8 [H, W, 3], right side up."""
        if self._renderer is None:
            raise RuntimeError("this env was made with render=False")
        return self._renderer.render(self._env.data)

    @property
    def steps(self) -> int:
        return self._steps

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._env is not None:
            self._env.close()
            self._env = None

    def __repr__(self) -> str:
        return (f"MetaWorldEnv({self.env_name!r}, image_size={self.image_size}, camera={self.camera!r}, "
                f"max_steps={self.max_steps})")

    # ------------------------------------------------------------------ internals

    def _obs(self, full_obs: np.ndarray, render: bool = True) -> dict[str, Any]:
        full_obs = np.asarray(full_obs, dtype=np.float64)
        images = [self._renderer.render(self._env.data)] if self._renderer is not None and render else []
        return {"images": images, "state": full_obs[:4].astype(np.float32), "full_obs": full_obs}


class _Expert:
    """A scripted Meta-World policy: `get_action(full_obs) -> float32[4]`, clipped to [-1, 1]."""

    def __init__(self, env_name: str, policy) -> None:
        self.env_name, self._policy = env_name, policy

    def get_action(self, full_obs: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Constant(s) may be too high": the env clips anyway
            action = self._policy.get_action(np.asarray(full_obs, dtype=np.float64))
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)

    __call__ = get_action

    def __repr__(self) -> str:
        return f"expert_policy({self.env_name!r})"


def expert_policy(env_name: str) -> _Expert:
    """Meta-World's scripted expert for `env_name` (from `metaworld.policies.ENV_POLICY_MAP`).

    It acts on the raw 39-D observation: `expert.get_action(obs["full_obs"]) -> float32[4]`.
    """
    _import_sim()
    from metaworld.policies import ENV_POLICY_MAP

    if env_name not in ENV_POLICY_MAP:
        raise unknown_name("Meta-World expert policy", env_name, ENV_POLICY_MAP)
    return _Expert(env_name, ENV_POLICY_MAP[env_name]())
