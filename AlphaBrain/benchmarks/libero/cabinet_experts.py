"""Scripted experts of the LIBERO-Goal tasks around the wooden cabinet (its top, its drawers) and the wine rack.

Same machinery as experts.py (waypoints.py: a waypoint machine on privileged simulator
state); experts.py registers these classes in EXPERTS / SCRIPTED_TASKS, so import them from
there. Importing this module starts no simulator.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from AlphaBrain.benchmarks.libero.waypoints import (
    BOWL_RIM_RADIUS,
    CLOSE,
    OPEN,
    Phase,
    ScriptedExpert,
    at,
    bowl_rim_grasp,
    geom_pos,
    joint_qpos,
    obj_pos,
    pick_and_place,
    site_pos,
)

CABINET_TOP_SITE = "wooden_cabinet_1_top_side"   # the goal region on the cabinet's top board (z ~1.127)
LIFT_ABOVE_TOP = 0.10   # carry height above the top board: the bowl's bottom (3 cm under the grasp) clears it

# The drawers slide along world +y when opened (joint qpos from 0 down to -0.16; LIBERO's Open: qpos < -0.14).
# Each handle is a bar along x (1.7 cm high, 1.5 cm deep) on two posts, 1.6 cm in front of the drawer; the
# drawer above leaves no room for a hand reaching down behind the bar, so the gripper grasps it horizontally.
DRAWERS = {   # level -> (slide joint, handle bar geom)
    "top": ("wooden_cabinet_1_top_level", "wooden_cabinet_1_g18"),
    "middle": ("wooden_cabinet_1_middle_level", "wooden_cabinet_1_g29"),
}
OPEN_Q = -0.15   # pull until here (LIBERO's threshold -0.14, the joint's limit -0.16)
HORIZONTAL = -np.pi / 2   # tilt: fingers pointing along -y (into the drawer), closing vertically round the bar


def drawer_phases(env, level: str) -> list[Phase]:
    """Turn the gripper horizontal in front of the handle, close it round the bar, pull the drawer open."""
    joint, bar_geom = DRAWERS[level]
    bar = geom_pos(env, bar_geom)
    grasp = bar + np.array([0.0, -0.002, 0.0])   # pad centres on the bar's front half, fingertips clear of the posts
    front = grasp + np.array([0.0, 0.07, 0.0])   # straight in front of it, fingers open above and below the bar

    def pull(env) -> np.ndarray:   # ahead of the moving bar along +y: the OSC's force grows with the error
        return geom_pos(env, bar_geom) + np.array([0.0, 0.06, 0.0])

    return [
        Phase("turn", at(front + np.array([-0.05, 0.05, 0.08])), OPEN, tol=0.03, max_steps=60, min_steps=25,
              tilt=HORIZONTAL, yaw=lambda env: 0.0),
        Phase("front", at(front), OPEN, tol=0.01, max_steps=60),
        Phase("in", at(grasp), OPEN, tol=0.006, max_steps=40, speed=0.5),
        Phase("grasp_bar", None, CLOSE, max_steps=12, min_steps=12),
        Phase("pull", pull, CLOSE, tol=0.0, max_steps=120, speed=0.6, track=True,
              done=lambda env: joint_qpos(env, joint) < OPEN_Q),
        Phase("let_go", None, OPEN, max_steps=6, min_steps=6),
    ]


class OpenMiddleDrawer(ScriptedExpert):
    """Grasp the middle drawer's handle bar with the gripper horizontal, pull the drawer open along +y."""

    task_name = "open_the_middle_drawer_of_the_cabinet"

    def plan(self, env):
        back = lambda env: np.asarray(env.raw_obs["robot0_eef_pos"]) + np.array([0.0, 0.06, 0.0])  # noqa: E731
        return [*drawer_phases(env, "middle"), Phase("retreat", back, OPEN, tol=0.01, max_steps=20)]


class BowlOnCabinet(ScriptedExpert):
    """Grasp the bowl's rim on the robot's side, lift it above the cabinet, lower it onto the top board."""

    task_name = "put_the_bowl_on_top_of_the_cabinet"
    PLACE_DY = 0.02   # towards the table's middle: the hand stays over the board, clear of its far edge

    def plan(self, env):
        self.yaw = np.pi / 2
        bowl = obj_pos(env, "akita_black_bowl_1")
        top = site_pos(env, CABINET_TOP_SITE)
        grasp = bowl_rim_grasp(bowl)
        # the bowl's origin ~1 cm above the board when released: it settles onto it
        place = np.array([top[0], top[1] + self.PLACE_DY, top[2] + 0.012]) + (grasp - bowl)
        return pick_and_place(grasp, place, lift_z=top[2] + LIFT_ABOVE_TOP)


class WineBottleOnCabinet(ScriptedExpert):
    """Grasp the bottle's neck, lift it above the cabinet (round the wine rack), stand it on the top board."""

    task_name = "put_the_wine_bottle_on_top_of_the_cabinet"
    BOTTLE = "wine_bottle_1"
    NECK = 0.13       # grasp height above the bottle's base: the thin neck (top ~0.16), the palm clears its tip
    LIFT = 0.06       # the base this far above the board while carried
    PLACE_DY = 0.01

    def plan(self, env):
        # fingers along x: the hand is narrow along y, clear of the wine rack behind the bottle (-y)
        self.yaw = np.pi / 2
        bottle = obj_pos(env, self.BOTTLE)
        top = site_pos(env, CABINET_TOP_SITE)
        grasp = bottle + np.array([0.0, 0.0, self.NECK])
        place = np.array([top[0], top[1] + self.PLACE_DY, top[2] + 0.01 + self.NECK])
        lift_z = top[2] + self.NECK + self.LIFT
        # first along +x at the bottle's y, then to the cabinet: a straight line passes over the rack
        via = [np.array([top[0] - 0.05, bottle[1], lift_z])]
        return pick_and_place(grasp, place, lift_z=lift_z, via=via)


class TopDrawerBowlInside(ScriptedExpert):
    """Pull the top drawer open, grasp the bowl's rim with the hand tilted clear of the drawer, lower it inside."""

    task_name = "open_the_top_drawer_and_put_the_bowl_inside"
    REGION_SITE = "wooden_cabinet_1_top_region"   # moves with the drawer; LIBERO's In: the bowl's origin inside
    # The open drawer (bottom ~1.056) overhangs the bowl's +x side: a gripper straight above the rim would
    # put its hand (~10 cm along x, 3-12 cm above the end effector) into it. Tilted about x, the hand leans
    # to +y, clear of the drawer's front, until the fingers are at the rim; there the gripper turns upright
    # (its hand now below the drawer), grasps, and slides the bowl to -x before lifting it past the drawer.
    TILT = -0.35
    GRASP_DZ = 0.028   # lower than the other bowl grasps: the upright hand must stay under the drawer
    ASIDE_DX = -0.05
    LIFT_Z = 1.2       # the bowl's bottom above the drawer's front (top ~1.122)

    def plan(self, env):
        bowl = obj_pos(env, "akita_black_bowl_1")
        grasp = np.array([bowl[0] - BOWL_RIM_RADIUS, bowl[1], bowl[2] + self.GRASP_DZ])
        offset = grasp - bowl
        aside = grasp + np.array([self.ASIDE_DX, 0.0, 0.01])

        def place(env) -> np.ndarray:   # where the drawer is now: the bowl ~1 cm above its floor (~1.064)
            r = site_pos(env, self.REGION_SITE)
            return np.array([r[0], r[1] + 0.005, r[2] - 0.015]) + offset

        def eef_plus(d) -> Callable:
            return lambda env: np.asarray(env.raw_obs["robot0_eef_pos"]) + np.asarray(d)

        return [
            *drawer_phases(env, "top"),
            Phase("back", eef_plus([0.0, 0.07, 0.05]), OPEN, tol=0.02, max_steps=25, min_steps=10, tilt=self.TILT),
            Phase("approach", at(grasp + np.array([0.0, 0.0, 0.06])), OPEN, tol=0.015, max_steps=80,
                  yaw=lambda env: np.pi / 2),
            Phase("descend", at(grasp), OPEN, tol=0.008, max_steps=50, speed=0.6),
            Phase("upright", at(grasp), OPEN, tol=0.0, max_steps=10, min_steps=10, tilt=0.0),
            Phase("grasp", None, CLOSE, max_steps=12, min_steps=12),
            Phase("aside", at(aside), CLOSE, tol=0.012, max_steps=30),
            Phase("lift", at(np.array([aside[0], aside[1], self.LIFT_Z])), CLOSE, tol=0.02, max_steps=60),
            Phase("carry", lambda env: np.array([*place(env)[:2], self.LIFT_Z]), CLOSE, tol=0.012, max_steps=90),
            Phase("lower", place, CLOSE, tol=0.01, max_steps=50, speed=0.5),
            Phase("release", None, OPEN, max_steps=8, min_steps=8),
            Phase("retreat", eef_plus([0.0, 0.0, 0.08]), OPEN, tol=0.02, max_steps=30),
        ]


class WineBottleOnRack(ScriptedExpert):
    """Grasp the bottle's neck, lift it, tilt it parallel to the rack's upper board, lay it there above the lip."""

    task_name = "put_the_wine_bottle_on_the_rack"
    REGION_SITE = "wine_rack_1_top_region"   # at the front lip of the rack's upper board, ~1 cm above it
    # The rack's two boards rise at ~31 degrees towards -y. LIBERO's On: the bottle's origin (its base centre)
    # within 2.2 cm of the region across the board, 0-10 cm up the slope, touching the rack.
    BOARD_NORMAL = np.array([0.0, 0.52, 0.85])
    UP_SLOPE = np.array([0.0, -0.85, 0.52])
    TILT = 1.02      # about x: the fingers (and the hanging bottle, neck up) point down the slope (+y)
    NECK = WineBottleOnCabinet.NECK
    UP = 0.03        # the base this far up the slope from the lip
    DX = 0.05        # along the board (x), clear of the rack's central post (x ~-0.27) for the hand
    LIFT_Z = 1.3

    def plan(self, env):
        self.yaw = np.pi / 2   # grasp as WineBottleOnCabinet (hand clear of the rack); yaw 0 once lifted
        bottle = obj_pos(env, WineBottleOnCabinet.BOTTLE)
        site = site_pos(env, self.REGION_SITE)
        base = site + 0.012 * self.BOARD_NORMAL + self.UP * self.UP_SLOPE + np.array([self.DX, 0.0, 0.0])
        fingers = np.array([0.0, np.sin(self.TILT), -np.cos(self.TILT)])   # the gripper's approach axis
        lay = base - self.NECK * fingers   # the end effector holding the neck when the base is there
        grasp = bottle + np.array([0.0, 0.0, self.NECK])
        # yaw 0 before tilting: the fingers then close across the tilt axis (x), so the bottle turns with
        # the hand instead of swinging about the grasp
        return [
            *pick_and_place(grasp, grasp, lift_z=self.LIFT_Z)[:4],   # approach, descend, grasp, lift
            Phase("turn", at(np.array([lay[0], -0.05, self.LIFT_Z + 0.02])), CLOSE, tol=0.03, max_steps=60,
                  min_steps=25, tilt=self.TILT, yaw=lambda env: 0.0),
            Phase("over", at(lay + 0.05 * self.BOARD_NORMAL), CLOSE, tol=0.01, max_steps=60),
            Phase("lay", at(lay + 0.005 * self.BOARD_NORMAL), CLOSE, tol=0.006, max_steps=40, speed=0.4),
            Phase("release", None, OPEN, max_steps=8, min_steps=8),
            Phase("retreat", lambda env: np.asarray(env.raw_obs["robot0_eef_pos"]) + np.array([0.0, 0.03, 0.06]),
                  OPEN, tol=0.01, max_steps=30),
        ]
