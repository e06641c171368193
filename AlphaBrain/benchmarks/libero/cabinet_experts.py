"""Scripted experts of the LIBERO-Goal tasks around the wooden cabinet (its top, its drawers).

Same machinery as experts.py (waypoints.py: a waypoint machine on privileged simulator
state); experts.py registers these classes in EXPERTS / SCRIPTED_TASKS, so import them from
there. Importing this module starts no simulator.
"""

from __future__ import annotations

import numpy as np

from AlphaBrain.benchmarks.libero.waypoints import ScriptedExpert, bowl_rim_grasp, obj_pos, pick_and_place, site_pos

CABINET_TOP_SITE = "wooden_cabinet_1_top_side"   # the goal region on the cabinet's top board (z ~1.127)
LIFT_ABOVE_TOP = 0.10   # carry height above the top board: the bowl's bottom (3 cm under the grasp) clears it


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
