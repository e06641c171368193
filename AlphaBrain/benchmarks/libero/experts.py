"""Scripted experts for a few LIBERO-Goal tasks, acting on privileged simulator state.

The demos of the `libero_goal_mini` stream come from these experts (generate.py), so the
whole LIBERO path (data, training, simulator evaluation, metrics) runs on a fresh CPU
machine without downloading the LIBERO datasets.

    expert = make_expert("put_the_bowl_on_the_plate", seed=3)
    obs = env.reset(seed)                 # a LiberoEnv: init state + settling wait steps
    expert.reset(env)                     # reads the settled object poses
    while not done:
        obs, success, done = env.step(expert.act(env))

An expert reads `env.raw_obs` (robosuite's observation dict: `robot0_eef_pos`,
`robot0_eef_quat`, `<object>_pos`, ...) and, for fixtures, `env.raw_env.sim` (sites,
geoms and joints by model name). It is a small waypoint machine in end-effector space:
each phase moves the gripper to a target position with the gripper open or closed, and
ends when the target is reached (or after a step budget). Actions are OSC_POSE deltas:
7 values in [-1, 1] (dx, dy, dz scaled by 0.05 m; droll, dpitch, dyaw scaled by 0.5 rad;
gripper -1 open, +1 close). Small seeded Gaussian noise on the arm dimensions makes the
demos differ between episodes; every action is clipped to [-1, 1].

Importing this module starts no simulator (the suites import MINI_TASKS from it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from AlphaBrain.utils.errors import unknown_name

# The LIBERO-Goal tasks with a scripted expert, in the suite's official order (their
# LIBERO task names; the instruction is the name with spaces).
MINI_TASKS: tuple[str, ...] = (
    "put_the_bowl_on_the_stove",
    "push_the_plate_to_the_front_of_the_stove",
    "put_the_cream_cheese_in_the_bowl",
    "turn_on_the_stove",
    "put_the_bowl_on_the_plate",
)

OPEN, CLOSE = -1.0, 1.0

# Measured in the LIBERO-Goal scene. The Panda gripper pointing down (yaw 0) closes its
# fingers along world y; the finger pads reach ~0.5-1 cm below the end-effector site.
BOWL_RIM_RADIUS = 0.048   # akita black bowl: outer radius ~0.053, wall ~0.5 cm
BOWL_HEIGHT = 0.051
PLATE_RADIUS = 0.068      # the plate's rim (slanted boxes) reaches ~0.068 from its centre, top ~0.919
TABLE_Z = 0.90


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


def _down_orientation(yaw: float) -> np.ndarray:
    """Rotation matrix of the gripper pointing straight down, turned by `yaw` about world z."""
    c, s = np.cos(yaw), np.sin(yaw)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    flip = np.diag([1.0, -1.0, -1.0])  # 180 degrees about x: LIBERO's home orientation
    return rz @ flip


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


def _at(point) -> Target:
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
        self.yaw = 0.0

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
        err = _mat_to_axis_angle(_down_orientation(self.yaw) @ current.T)  # world-frame rotation to apply
        return np.clip(err * self.rot_gain, -1.0, 1.0)

    def _finish(self, pos: np.ndarray, rot: np.ndarray, gripper: float) -> np.ndarray:
        arm = np.concatenate([pos, rot])
        if self.noise > 0:
            arm = arm + self.rng.normal(0.0, self.noise, size=6)
        arm = np.clip(arm, -self.max_delta, self.max_delta)
        return np.clip(np.concatenate([arm, [gripper]]), -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------- pick and place


def _pick_and_place(grasp: np.ndarray, place: np.ndarray, *, lift_z: float, grasp_tol: float = 0.008,
                    approach_dz: float = 0.08, close_steps: int = 12, release_steps: int = 8) -> list[Phase]:
    """Phases of a top-down pick at `grasp` and a release at `place` (both end-effector positions)."""
    above_grasp = grasp + np.array([0.0, 0.0, approach_dz])
    above_place = np.array([place[0], place[1], lift_z])
    return [
        Phase("approach", _at(above_grasp), OPEN, tol=0.015, max_steps=80),
        Phase("descend", _at(grasp), OPEN, tol=grasp_tol, max_steps=50, speed=0.6),
        Phase("grasp", None, CLOSE, max_steps=close_steps, min_steps=close_steps),
        Phase("lift", _at(np.array([grasp[0], grasp[1], lift_z])), CLOSE, tol=0.02, max_steps=60),
        Phase("carry", _at(above_place), CLOSE, tol=0.012, max_steps=90),
        Phase("lower", _at(place), CLOSE, tol=0.01, max_steps=50, speed=0.5),
        Phase("release", None, OPEN, max_steps=release_steps, min_steps=release_steps),
        Phase("retreat", _at(place + np.array([0.0, 0.0, 0.08])), OPEN, tol=0.02, max_steps=30),
    ]


def _bowl_rim_grasp(bowl: np.ndarray) -> np.ndarray:
    # The rim on the robot's side (-x), fingers turned to close along x: the hand stays clear of
    # the cabinet (which a grasp on the -y side hits when carrying to the plate).
    return np.array([bowl[0] - BOWL_RIM_RADIUS, bowl[1], bowl[2] + 0.03])


class BowlOnPlate(ScriptedExpert):
    """Grasp the bowl's rim on the robot's side (gripper turned 90 degrees), lift, lower it onto the plate centre."""

    task_name = "put_the_bowl_on_the_plate"

    def plan(self, env):
        self.yaw = np.pi / 2
        bowl, plate = obj_pos(env, "akita_black_bowl_1"), obj_pos(env, "plate_1")
        grasp = _bowl_rim_grasp(bowl)
        offset = grasp - bowl
        place = np.array([plate[0], plate[1], plate[2] + 0.012]) + offset + np.array([0.0, 0.0, 0.01])
        return _pick_and_place(grasp, place, lift_z=bowl[2] + 0.17)


class BowlOnStove(ScriptedExpert):
    """Grasp the bowl's rim on the robot's side, lift, lower it onto the centre of the stove's cook region."""

    task_name = "put_the_bowl_on_the_stove"

    def plan(self, env):
        self.yaw = np.pi / 2
        bowl = obj_pos(env, "akita_black_bowl_1")
        cook = site_pos(env, "flat_stove_1_cook_region")
        burner = site_pos(env, "flat_stove_1_burner")
        grasp = _bowl_rim_grasp(bowl)
        offset = grasp - bowl
        place = np.array([cook[0], cook[1], burner[2]]) + offset + np.array([0.0, 0.0, 0.012])
        return _pick_and_place(grasp, place, lift_z=bowl[2] + 0.17)


class CreamCheeseInBowl(ScriptedExpert):
    """Grasp the cream cheese box across its narrow side, lift, drop it into the bowl from just above the rim."""

    task_name = "put_the_cream_cheese_in_the_bowl"

    def plan(self, env):
        cheese, bowl = obj_pos(env, "cream_cheese_1"), obj_pos(env, "akita_black_bowl_1")
        grasp = np.array([cheese[0], cheese[1], cheese[2] + 0.006])
        place = np.array([bowl[0], bowl[1], bowl[2] + BOWL_HEIGHT + 0.02])
        return _pick_and_place(grasp, place, lift_z=bowl[2] + 0.16)


class TurnOnStove(ScriptedExpert):
    """Grasp the bar across the stove knob near its end, then turn it: the gripper follows an arc about the hinge."""

    task_name = "turn_on_the_stove"
    KNOB_JOINT = "flat_stove_1_button"   # hinge about world z; on at >= 0.5 rad
    KNOB_BODY = "flat_stove_1_button"
    BAR_TIP_GEOM = "flat_stove_1_g22"     # the +x end of the bar across the dial
    RADIUS = 0.033                        # grasp point on the bar, from the hinge: clear of the tall central knob
    LEAD = 0.35                           # rad ahead of the knob: the OSC's force grows with the error
    TARGET_ANGLE = 0.85                   # stop turning here (on from 0.5; the damped knob stays put)

    def plan(self, env):
        hinge = body_pos(env, self.KNOB_BODY)
        tip = geom_pos(env, self.BAR_TIP_GEOM)
        q0 = joint_qpos(env, self.KNOB_JOINT)
        theta0 = float(np.arctan2(tip[1] - hinge[1], tip[0] - hinge[0])) - q0  # bar direction at qpos 0
        z = TABLE_Z + 0.035   # finger pads above the dial's ticks (top ~0.918), around the bar (top ~0.94)
        # fingers close along world y at yaw 0: across the bar when the bar points along x
        self.yaw = theta0 + q0
        yaw0 = self.yaw

        def point(theta: float) -> np.ndarray:
            return np.array([hinge[0] + self.RADIUS * np.cos(theta), hinge[1] + self.RADIUS * np.sin(theta), z])

        def angle(env) -> float:
            return min(joint_qpos(env, self.KNOB_JOINT) + self.LEAD, self.TARGET_ANGLE + 0.1)

        grasp = point(theta0 + q0)
        return [
            Phase("above", _at(grasp + [0, 0, 0.08]), OPEN, tol=0.012, max_steps=90),
            Phase("descend", _at(grasp), OPEN, tol=0.006, max_steps=50, speed=0.5),
            Phase("grasp", None, CLOSE, max_steps=10, min_steps=10),
            Phase("turn", lambda env: point(theta0 + angle(env)), CLOSE, tol=0.0, max_steps=120, speed=0.6,
                  track=True, yaw=lambda env: yaw0 - q0 + angle(env),
                  done=lambda env: joint_qpos(env, self.KNOB_JOINT) >= self.TARGET_ANGLE),
            Phase("release", None, OPEN, max_steps=6, min_steps=6),
            Phase("retreat", lambda env: np.asarray(env.raw_obs["robot0_eef_pos"]) + [0, 0, 0.06], OPEN,
                  tol=0.01, max_steps=20),
        ]


class PushPlateToStoveFront(ScriptedExpert):
    """Slide the cream cheese out of the plate's path (+x), then push the plate's rim from behind into the region."""

    task_name = "push_the_plate_to_the_front_of_the_stove"
    REGION_SITE = "main_table_stove_front_region"   # x -0.09..-0.01, y 0.17..0.25 (a box of half-size 0.04)
    CHEESE = "cream_cheese_1"   # it lies between the plate and the region: the plate's low rim would ride onto it
    CHEESE_HALF_X = 0.041
    CHEESE_SHIFT = 0.2          # how far the cheese is slid along +x: then it clears the plate's path
    GOAL_DY = 0.005
    PUSH_LEAD = 0.09            # end effector sent this far ahead (of the contact point / the plate's centre)
    GOAL_TOL = 0.012
    LOST_DIST = 0.05            # end effector this far from the plate's centre: it slipped out
    RETRIES = 2

    def plan(self, env):
        region = site_pos(env, self.REGION_SITE)
        cheese = obj_pos(env, self.CHEESE)
        goal = np.array([region[0], region[1] + self.GOAL_DY])
        z = TABLE_Z + 0.017          # finger pads ~0.5 cm above the table, against the cheese's side
        zp = TABLE_Z + 0.0           # inside the plate: pressed onto its floor (top ~0.909), below the rim (~0.919)
        self.yaw = np.pi / 2         # fingers along x: the hand is narrow along y, clear of the cabinet
        cheese_goal_x = cheese[0] + self.CHEESE_SHIFT
        back = self.CHEESE_HALF_X + 0.016

        def cheese_push(env) -> np.ndarray:
            c = obj_pos(env, self.CHEESE)
            x = c[0] - back + min(0.05, cheese_goal_x - c[0] + 0.01)
            return np.array([x, c[1], z])

        def plate_push(env) -> np.ndarray:
            # the closed fingers sit inside the plate, pressed down, and push its rim from within
            p = obj_pos(env, "plate_1")
            d = goal - p[:2]
            dist = float(np.linalg.norm(d))
            t = p[:2] + d / max(dist, 1e-6) * min(self.PUSH_LEAD, dist + 0.05)
            return np.array([t[0], t[1], zp])

        cheese_start = np.array([cheese[0] - back - 0.01, cheese[1], z])

        def arrived(env) -> bool:
            return float(np.linalg.norm(goal - obj_pos(env, "plate_1")[:2])) < self.GOAL_TOL

        def lost(env) -> bool:  # the fingers slipped over the rim: re-centre and push again
            eef = np.asarray(env.raw_obs["robot0_eef_pos"], dtype=np.float64)
            return arrived(env) or float(np.linalg.norm(eef[:2] - obj_pos(env, "plate_1")[:2])) > self.LOST_DIST

        def above_plate(env) -> np.ndarray:
            return obj_pos(env, "plate_1")[:2].tolist() + [zp + 0.06]

        def on_plate(env) -> np.ndarray:
            return obj_pos(env, "plate_1")[:2].tolist() + [zp]

        phases = [
            Phase("above_cheese", _at(cheese_start + [0, 0, 0.08]), CLOSE, tol=0.015, max_steps=80),
            Phase("down_cheese", _at(cheese_start), CLOSE, tol=0.008, max_steps=50, speed=0.6),
            Phase("slide_cheese", cheese_push, CLOSE, tol=0.0, max_steps=100, speed=0.5, track=True,
                  done=lambda env: obj_pos(env, self.CHEESE)[0] >= cheese_goal_x - 0.01),
            Phase("up", lambda env: np.asarray(env.raw_obs["robot0_eef_pos"]) + [-0.02, 0, 0.06], CLOSE,
                  tol=0.015, max_steps=30),
        ]
        for i in range(1 + self.RETRIES):
            phases += [
                Phase(f"above_plate{i}", above_plate, CLOSE, tol=0.015, max_steps=80, track=True, done=arrived),
                Phase(f"down_plate{i}", on_plate, CLOSE, tol=0.0, max_steps=20, min_steps=20, speed=0.6,
                      track=True),
                Phase(f"push_plate{i}", plate_push, CLOSE, tol=0.0, max_steps=180, speed=0.4, track=True,
                      done=lost),
            ]
        phases.append(Phase("retreat", lambda env: np.asarray(env.raw_obs["robot0_eef_pos"]) + [0, 0, 0.05], CLOSE,
                            tol=0.01, max_steps=15))
        return phases


EXPERTS: dict[str, type[ScriptedExpert]] = {
    cls.task_name: cls
    for cls in (BowlOnStove, PushPlateToStoveFront, CreamCheeseInBowl, TurnOnStove, BowlOnPlate)
}
if tuple(EXPERTS) != MINI_TASKS:  # an expert added to one and not the other
    raise ImportError(f"experts.py: EXPERTS {tuple(EXPERTS)} and MINI_TASKS {MINI_TASKS} differ")


def make_expert(task_name: str, seed: int = 0, noise: float = 0.05) -> ScriptedExpert:
    """The scripted expert of a LIBERO-Goal task in MINI_TASKS (its LIBERO name or the instruction)."""
    key = task_name.strip().replace(" ", "_").lower()
    if key not in EXPERTS:
        raise unknown_name("libero_goal_mini task (no scripted expert)", task_name, MINI_TASKS)
    return EXPERTS[key](seed=seed, noise=noise)


def expert_strategies() -> dict[str, str]:
    """One line per task: how its expert works (for docs and the generator's summary)."""
    return {name: (cls.__doc__ or "").strip().splitlines()[0] for name, cls in EXPERTS.items()}
