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
