"""Scripted experts for LIBERO-Goal tasks, acting on privileged simulator state.

The demos of the `libero_goal_mini` stream come from these experts (generate.py), so the
whole LIBERO path (data, training, simulator evaluation, metrics) runs on a fresh CPU
machine without downloading the LIBERO datasets.

    expert = make_expert("put_the_bowl_on_the_plate", seed=3)
    obs = env.reset(seed)                 # a LiberoEnv: init state + settling wait steps
    expert.reset(env)                     # reads the settled object poses
    while not done:
        obs, success, done = env.step(expert.act(env))

Each expert is a small waypoint machine in end-effector space, acting on privileged
simulator state (waypoints.py: what it reads, the action convention).

SCRIPTED_TASKS: every LIBERO-Goal task with an expert (cabinet_experts.py holds those around
the cabinet); MINI_TASKS: the fixed 5-task subset the libero_goal_mini stream trains on.
Importing this module starts no simulator (the suites import MINI_TASKS from it).
"""

from __future__ import annotations

import numpy as np

from AlphaBrain.benchmarks.libero.waypoints import (
    BOWL_HEIGHT,
    CLOSE,
    OPEN,
    Phase,
    ScriptedExpert,
    Target,
    TABLE_Z,
    at,
    body_pos,
    bowl_rim_grasp,
    geom_pos,
    joint_qpos,
    obj_pos,
    pick_and_place,
    site_pos,
)
from AlphaBrain.benchmarks.libero.cabinet_experts import (
    BowlOnCabinet,
    OpenMiddleDrawer,
    TopDrawerBowlInside,
    WineBottleOnCabinet,
    WineBottleOnRack,
)
from AlphaBrain.utils.errors import unknown_name

__all__ = [
    "CLOSE", "EXPERTS", "MINI_TASKS", "OPEN", "Phase", "SCRIPTED_TASKS", "ScriptedExpert", "Target", "body_pos",
    "expert_strategies", "geom_pos", "joint_qpos", "make_expert", "obj_pos", "site_pos",
]

# The tasks of the libero_goal_mini stream, in LIBERO-Goal's official order (their LIBERO task
# names; the instruction is the name with spaces). Fixed: its cached datasets and tests depend
# on it; experts added later go into SCRIPTED_TASKS only.
MINI_TASKS: tuple[str, ...] = (
    "put_the_bowl_on_the_stove",
    "push_the_plate_to_the_front_of_the_stove",
    "put_the_cream_cheese_in_the_bowl",
    "turn_on_the_stove",
    "put_the_bowl_on_the_plate",
)



class BowlOnPlate(ScriptedExpert):
    """Grasp the bowl's rim on the robot's side (gripper turned 90 degrees), lift, lower it onto the plate centre."""

    task_name = "put_the_bowl_on_the_plate"

    def plan(self, env):
        self.yaw = np.pi / 2
        bowl, plate = obj_pos(env, "akita_black_bowl_1"), obj_pos(env, "plate_1")
        grasp = bowl_rim_grasp(bowl)
        offset = grasp - bowl
        place = np.array([plate[0], plate[1], plate[2] + 0.012]) + offset + np.array([0.0, 0.0, 0.01])
        return pick_and_place(grasp, place, lift_z=bowl[2] + 0.17)


class BowlOnStove(ScriptedExpert):
    """Grasp the bowl's rim on the robot's side, lift, lower it onto the centre of the stove's cook region."""

    task_name = "put_the_bowl_on_the_stove"

    def plan(self, env):
        self.yaw = np.pi / 2
        bowl = obj_pos(env, "akita_black_bowl_1")
        cook = site_pos(env, "flat_stove_1_cook_region")
        burner = site_pos(env, "flat_stove_1_burner")
        grasp = bowl_rim_grasp(bowl)
        offset = grasp - bowl
        place = np.array([cook[0], cook[1], burner[2]]) + offset + np.array([0.0, 0.0, 0.012])
        return pick_and_place(grasp, place, lift_z=bowl[2] + 0.17)


class CreamCheeseInBowl(ScriptedExpert):
    """Grasp the cream cheese box across its narrow side, lift, drop it into the bowl from just above the rim."""

    task_name = "put_the_cream_cheese_in_the_bowl"

    def plan(self, env):
        cheese, bowl = obj_pos(env, "cream_cheese_1"), obj_pos(env, "akita_black_bowl_1")
        grasp = np.array([cheese[0], cheese[1], cheese[2] + 0.006])
        place = np.array([bowl[0], bowl[1], bowl[2] + BOWL_HEIGHT + 0.02])
        return pick_and_place(grasp, place, lift_z=bowl[2] + 0.16)


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
            Phase("above", at(grasp + [0, 0, 0.08]), OPEN, tol=0.012, max_steps=90),
            Phase("descend", at(grasp), OPEN, tol=0.006, max_steps=50, speed=0.5),
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
            Phase("above_cheese", at(cheese_start + [0, 0, 0.08]), CLOSE, tol=0.015, max_steps=80),
            Phase("down_cheese", at(cheese_start), CLOSE, tol=0.008, max_steps=50, speed=0.6),
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


# Every LIBERO-Goal task with a scripted expert, in the suite's official order (tests check it against
# tasks.LIBERO_TASKS; tasks.py reads these tuples, so this module does not import it).
EXPERTS: dict[str, type[ScriptedExpert]] = {
    cls.task_name: cls
    for cls in (OpenMiddleDrawer, BowlOnStove, WineBottleOnCabinet, TopDrawerBowlInside, BowlOnCabinet,
                PushPlateToStoveFront, CreamCheeseInBowl, TurnOnStove, BowlOnPlate, WineBottleOnRack)
}
SCRIPTED_TASKS: tuple[str, ...] = tuple(EXPERTS)
if not set(MINI_TASKS) <= set(SCRIPTED_TASKS):
    raise ImportError(f"experts.py: MINI_TASKS {MINI_TASKS} must all have an expert in EXPERTS")


def make_expert(task_name: str, seed: int = 0, noise: float = 0.05) -> ScriptedExpert:
    """The scripted expert of a LIBERO-Goal task in SCRIPTED_TASKS (its LIBERO name or the instruction)."""
    key = task_name.strip().replace(" ", "_").lower()
    if key not in EXPERTS:
        raise unknown_name("LIBERO-Goal task with a scripted expert", task_name, SCRIPTED_TASKS)
    return EXPERTS[key](seed=seed, noise=noise)


def expert_strategies() -> dict[str, str]:
    """One line per task: how its expert works (for docs and the generator's summary)."""
    return {name: (cls.__doc__ or "").strip().splitlines()[0] for name, cls in EXPERTS.items()}
