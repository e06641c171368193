"""The waypoint machine the LIBERO scripted experts (experts.py) are built on, and what they read.

An expert reads `env.raw_obs` (robosuite's observation dict: `robot0_eef_pos`,
`robot0_eef_quat`, `<object>_pos`, ...) and, for fixtures, `env.raw_env.sim` (sites,
geoms and joints by model name). It is a small waypoint machine in end-effector space:
each phase moves the gripper to a target position with the gripper open or closed, and
ends when the target is reached (or after a step budget). Actions are OSC_POSE deltas:
7 values in [-1, 1] (dx, dy, dz scaled by 0.05 m; droll, dpitch, dyaw scaled by 0.5 rad;
gripper -1 open, +1 close). Small seeded Gaussian noise on the arm dimensions makes the
demos differ between episodes; every action is clipped to [-1, 1].

Importing this module starts no simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

OPEN, CLOSE = -1.0, 1.0


# ---------------------------------------------------------------------------- geometry helpers


def _quat_xyzw_to_mat(q: np.ndarray) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    n = x * x + y * y + z * z + w * w
    if n < 1e-12:
        return np.eye(3)
    s = 2.0 / n
    return np.array([
        [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
        [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
        [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)],
    ])


def _mat_to_axis_angle(m: np.ndarray) -> np.ndarray:
    cos = np.clip((np.trace(m) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    if angle < 1e-6:
        return np.zeros(3)
    v = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]])
    if np.sin(angle) > 1e-4:
        return v / (2.0 * np.sin(angle)) * angle
    # angle ~ pi: the axis is the column of (m + I) with the largest norm
    b = m + np.eye(3)
    axis = b[:, int(np.argmax(np.linalg.norm(b, axis=0)))]
    return axis / np.linalg.norm(axis) * angle


def _down_orientation(yaw: float, tilt: float = 0.0) -> np.ndarray:
    """Rotation matrix of the gripper pointing straight down, turned by `yaw` about world z, then
    tilted by `tilt` about world x (-pi/2: the fingers point along -y, closing vertically at yaw 0)."""
    c, s = np.cos(yaw), np.sin(yaw)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    flip = np.diag([1.0, -1.0, -1.0])  # 180 degrees about x: LIBERO's home orientation
    ct, st = np.cos(tilt), np.sin(tilt)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, ct, -st], [0.0, st, ct]])
    return rx @ rz @ flip


def _sim_of(env) -> Any:
    raw = getattr(env, "raw_env", env)
    return raw.sim


def site_pos(env, name: str) -> np.ndarray:
    sim = _sim_of(env)
    return np.array(sim.data.site_xpos[sim.model.site_name2id(name)], dtype=np.float64)


def geom_pos(env, name: str) -> np.ndarray:
    sim = _sim_of(env)
    return np.array(sim.data.geom_xpos[sim.model.geom_name2id(name)], dtype=np.float64)


def body_pos(env, name: str) -> np.ndarray:
    sim = _sim_of(env)
    return np.array(sim.data.body_xpos[sim.model.body_name2id(name)], dtype=np.float64)


def joint_qpos(env, name: str) -> float:
    sim = _sim_of(env)
    return float(sim.data.qpos[sim.model.get_joint_qpos_addr(name)])


def obj_pos(env, obj: str) -> np.ndarray:
    return np.array(env.raw_obs[f"{obj}_pos"], dtype=np.float64)


# ---------------------------------------------------------------------------- the waypoint machine


Target = Callable[[Any], np.ndarray]  # env -> xyz


def at(point) -> Target:
    """A fixed target."""
    p = np.asarray(point, dtype=np.float64)
    return lambda env: p


@dataclass
class Phase:
    """Move to `target` (a point, or a function of the env evaluated every step) with the gripper at `gripper`.

    Ends when the end effector is within `tol` of the target or `done(env)` holds (once `min_steps`
    have passed), or after `max_steps`. `speed` caps the position action. `target=None` holds the
    previous phase's target for `min_steps` steps (e.g. while the gripper closes).
    """

    name: str
    target: Optional[Target]
    gripper: float
    tol: float = 0.01
    max_steps: int = 60
    min_steps: int = 0
    speed: float = 1.0
    track: bool = False   # re-evaluate the target every step (else once, when the phase starts)
    done: Optional[Callable[[Any], bool]] = None   # ends the phase early (e.g. the object reached its goal)
    yaw: Optional[Callable[[Any], float]] = None   # gripper yaw during the phase (default: the expert's)
    tilt: Optional[float] = None   # from this phase on, the gripper's tilt about world x (default: unchanged)


class ScriptedExpert:
    """A waypoint/state machine over `Phase`s; subclasses build the phases from the settled scene."""

    task_name = ""
    gain = 12.0       # position action per metre of error (saturates at 1 beyond ~8 cm)
    rot_gain = 3.0    # rotation action per radian of error

    def __init__(self, seed: int = 0, noise: float = 0.05, max_delta: float = 1.0) -> None:
        self.rng = np.random.default_rng(int(seed))
        self.noise = float(noise)
        self.max_delta = float(max_delta)
        self.phases: list[Phase] = []
        self.k = 0
        self.t = 0
        self._frozen: Optional[np.ndarray] = None
        self.clean_action: Optional[np.ndarray] = None  # the last action before its noise
        self.yaw = 0.0
        self.tilt = 0.0   # about world x, after the yaw (see _down_orientation)

    # ------------------------------------------------------------------ API

    def reset(self, env) -> None:
        """Plan the episode from the settled scene (call after env.reset, i.e. after the wait steps)."""
        self.k, self.t, self._frozen = 0, 0, None
        self.phases = list(self.plan(env))

    @property
    def phase(self) -> Optional[str]:
        return self.phases[self.k].name if self.k < len(self.phases) else None

    @property
    def finished(self) -> bool:
        return self.k >= len(self.phases)

    def act(self, env) -> np.ndarray:
        """The next action, float32[7] in [-1, 1]."""
        obs = env.raw_obs
        eef = np.asarray(obs["robot0_eef_pos"], dtype=np.float64)
        rot = self._rotation_action(np.asarray(obs["robot0_eef_quat"], dtype=np.float64))
        while self.k < len(self.phases):
            ph = self.phases[self.k]
            if ph.target is None:
                target = self._frozen if self._frozen is not None else eef
            elif ph.track or self._frozen is None:
                target = np.asarray(ph.target(env), dtype=np.float64)
            else:
                target = self._frozen
            self._frozen = target
            err = target - eef
            reached = np.linalg.norm(err) < ph.tol and self.t >= ph.min_steps
            if ph.done is not None and self.t >= ph.min_steps and ph.done(env):
                reached = True
            if (reached or self.t >= ph.max_steps) and not (ph.target is None and self.t < ph.min_steps):
                self.k += 1
                self.t = 0
                if self.k < len(self.phases) and self.phases[self.k].target is not None:
                    self._frozen = None
                continue
            self.t += 1
            if ph.tilt is not None:
                self.tilt = float(ph.tilt)
            if ph.yaw is not None or ph.tilt is not None:
                if ph.yaw is not None:
                    self.yaw = float(ph.yaw(env))
                rot = self._rotation_action(np.asarray(obs["robot0_eef_quat"], dtype=np.float64))
            pos = np.clip(err * self.gain, -ph.speed, ph.speed)
            return self._finish(pos, rot, ph.gripper)
        # all phases done: stay still, gripper as in the last phase
        last = self.phases[-1].gripper if self.phases else OPEN
        return self._finish(np.zeros(3), rot, last)

    __call__ = act

    def plan(self, env) -> Sequence[Phase]:
        raise NotImplementedError

    # ------------------------------------------------------------------ internals

    def _rotation_action(self, quat_xyzw: np.ndarray) -> np.ndarray:
        current = _quat_xyzw_to_mat(quat_xyzw)
        err = _mat_to_axis_angle(_down_orientation(self.yaw, self.tilt) @ current.T)  # world-frame rotation to apply
        return np.clip(err * self.rot_gain, -1.0, 1.0)

    def _finish(self, pos: np.ndarray, rot: np.ndarray, gripper: float) -> np.ndarray:
        clean = np.concatenate([pos, rot])
        # The noise-free action is kept for noise-free labels (DART): the noisy one is executed, so the
        # demos visit the states a slightly-off policy reaches, and the label says how the expert recovers.
        self.clean_action = self._clip(clean, gripper)
        arm = clean + self.rng.normal(0.0, self.noise, size=6) if self.noise > 0 else clean
        return self._clip(arm, gripper)

    def _clip(self, arm: np.ndarray, gripper: float) -> np.ndarray:
        arm = np.clip(arm, -self.max_delta, self.max_delta)
        return np.clip(np.concatenate([arm, [gripper]]), -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------- pick and place (shared by the experts)

# Measured in the LIBERO-Goal scene. The Panda gripper pointing down (yaw 0) closes its
# fingers along world y; the finger pads reach ~0.5-1 cm below the end-effector site.
BOWL_RIM_RADIUS = 0.048   # akita black bowl: outer radius ~0.053, wall ~0.5 cm
BOWL_HEIGHT = 0.051
PLATE_RADIUS = 0.068      # the plate's rim (slanted boxes) reaches ~0.068 from its centre, top ~0.919
TABLE_Z = 0.90


def pick_and_place(grasp: np.ndarray, place: np.ndarray, *, lift_z: float, grasp_tol: float = 0.008,
                   approach_dz: float = 0.08, close_steps: int = 12, release_steps: int = 8,
                   via: Sequence[np.ndarray] = ()) -> list[Phase]:
    """Phases of a top-down pick at `grasp` and a release at `place` (both end-effector positions).

    `via`: points the carry passes through (around a fixture in the straight path).
    """
    above_grasp = grasp + np.array([0.0, 0.0, approach_dz])
    above_place = np.array([place[0], place[1], lift_z])
    return [
        Phase("approach", at(above_grasp), OPEN, tol=0.015, max_steps=80),
        Phase("descend", at(grasp), OPEN, tol=grasp_tol, max_steps=50, speed=0.6),
        Phase("grasp", None, CLOSE, max_steps=close_steps, min_steps=close_steps),
        Phase("lift", at(np.array([grasp[0], grasp[1], lift_z])), CLOSE, tol=0.02, max_steps=60),
        *(Phase(f"via{i}", at(p), CLOSE, tol=0.03, max_steps=90) for i, p in enumerate(via)),
        Phase("carry", at(above_place), CLOSE, tol=0.012, max_steps=90),
        Phase("lower", at(place), CLOSE, tol=0.01, max_steps=50, speed=0.5),
        Phase("release", None, OPEN, max_steps=release_steps, min_steps=release_steps),
        Phase("retreat", at(place + np.array([0.0, 0.0, 0.08])), OPEN, tol=0.02, max_steps=30),
    ]


def bowl_rim_grasp(bowl: np.ndarray) -> np.ndarray:
    # The rim on the robot's side (-x), fingers turned to close along x: the hand stays clear of
    # the cabinet (which a grasp on the -y side hits when carrying to the plate).
    return np.array([bowl[0] - BOWL_RIM_RADIUS, bowl[1], bowl[2] + 0.03])
