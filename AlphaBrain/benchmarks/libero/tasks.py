"""The LIBERO suites as evaluation suites: task order, instructions, step limits, wait steps.

Pure data (no simulator import): the training side, the evaluator and `list_suites`
need the task names and instructions without LIBERO being importable in this
interpreter (the simulator may live in another one, LIBERO_PYTHON).

Task order = `libero.libero.benchmark.get_benchmark_dict()[suite](task_order_index=0)`,
which is LIBERO's file order (tests/benchmarks/test_libero_suites.py checks the tables
below against the installed LIBERO). A task's instruction is LIBERO's `task.language`
(its BDDL file name without the scene prefix, underscores -> spaces); its name in
streams, checkpoints and matrices is slugify(instruction).

Episodes: trial k of a task starts from init state k of the task's init-state file
(`seed % n_init_states`; LIBERO ships 50 per task), then NUM_WAIT_STEPS no-op steps let
the objects settle (not counted), then at most the suite's step limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from AlphaBrain.utils.errors import unknown_name

# BDDL names (LIBERO's task.name) in the official order (task_order_index 0).
LIBERO_TASKS: dict[str, tuple[str, ...]] = {
    "libero_spatial": (
        "pick_up_the_black_bowl_between_the_plate_and_the_ramekin_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_next_to_the_ramekin_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_from_table_center_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_on_the_cookie_box_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_in_the_top_drawer_of_the_wooden_cabinet_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_on_the_ramekin_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_next_to_the_cookie_box_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_on_the_stove_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_next_to_the_plate_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_on_the_wooden_cabinet_and_place_it_on_the_plate",
    ),
    "libero_object": (
        "pick_up_the_alphabet_soup_and_place_it_in_the_basket",
        "pick_up_the_cream_cheese_and_place_it_in_the_basket",
        "pick_up_the_salad_dressing_and_place_it_in_the_basket",
        "pick_up_the_bbq_sauce_and_place_it_in_the_basket",
        "pick_up_the_ketchup_and_place_it_in_the_basket",
        "pick_up_the_tomato_sauce_and_place_it_in_the_basket",
        "pick_up_the_butter_and_place_it_in_the_basket",
        "pick_up_the_milk_and_place_it_in_the_basket",
        "pick_up_the_chocolate_pudding_and_place_it_in_the_basket",
        "pick_up_the_orange_juice_and_place_it_in_the_basket",
    ),
    "libero_goal": (
        "open_the_middle_drawer_of_the_cabinet",
        "put_the_bowl_on_the_stove",
        "put_the_wine_bottle_on_top_of_the_cabinet",
        "open_the_top_drawer_and_put_the_bowl_inside",
        "put_the_bowl_on_top_of_the_cabinet",
        "push_the_plate_to_the_front_of_the_stove",
        "put_the_cream_cheese_in_the_bowl",
        "turn_on_the_stove",
        "put_the_bowl_on_the_plate",
        "put_the_wine_bottle_on_the_rack",
    ),
    "libero_10": (
        "LIVING_ROOM_SCENE2_put_both_the_alphabet_soup_and_the_tomato_sauce_in_the_basket",
        "LIVING_ROOM_SCENE2_put_both_the_cream_cheese_box_and_the_butter_in_the_basket",
        "KITCHEN_SCENE3_turn_on_the_stove_and_put_the_moka_pot_on_it",
        "KITCHEN_SCENE4_put_the_black_bowl_in_the_bottom_drawer_of_the_cabinet_and_close_it",
        "LIVING_ROOM_SCENE5_put_the_white_mug_on_the_left_plate_and_put_the_yellow_and_white_mug_on_the_right_plate",
        "STUDY_SCENE1_pick_up_the_book_and_place_it_in_the_back_compartment_of_the_caddy",
        "LIVING_ROOM_SCENE6_put_the_white_mug_on_the_plate_and_put_the_chocolate_pudding_to_the_right_of_the_plate",
        "LIVING_ROOM_SCENE1_put_both_the_alphabet_soup_and_the_cream_cheese_box_in_the_basket",
        "KITCHEN_SCENE8_put_both_moka_pots_on_the_stove",
        "KITCHEN_SCENE6_put_the_yellow_and_white_mug_in_the_microwave_and_close_it",
    ),
}

# Episode limits used by LIBERO evaluations (openvla/openpi): longer suites get more steps.
MAX_STEPS: dict[str, int] = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520}

NUM_WAIT_STEPS = 10  # no-op steps after reset while objects settle (they start slightly above the table)
NOOP_ACTION = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # zero delta pose, gripper open

ALIASES: dict[str, str] = {"libero_long": "libero_10"}  # LIBERO-Long is LIBERO-10

MINI_SUITE = "libero_goal_mini"
# Placeholder until AlphaBrain/benchmarks/libero/experts.py defines MINI_TASKS (the tasks
# its scripted experts solve); mini_tasks() prefers that constant when it exists.
_MINI_PLACEHOLDER: tuple[str, ...] = (
        "open_the_middle_drawer_of_the_cabinet",
        "put_the_bowl_on_the_stove",
        "turn_on_the_stove",
        "put_the_bowl_on_the_plate",
)

SCRIPTED_SUITE = "libero_goal_scripted"
# The suites whose training data the scripted experts generate on this machine (generate.py).
GENERATED_SUITES: tuple[str, ...] = (MINI_SUITE, SCRIPTED_SUITE)

SUITE_DESCRIPTIONS: dict[str, str] = {
        "libero_spatial": "LIBERO-Spatial: the same objects in 10 layouts; pick the bowl the instruction locates.",
        "libero_object": "LIBERO-Object: one scene, 10 different objects to pick and place in the basket.",
        "libero_goal": "LIBERO-Goal: one scene and layout, 10 different goals.",
        "libero_10": "LIBERO-10 (LIBERO-Long): 10 long-horizon, multi-step tasks in varied scenes.",
        "libero_long": "LIBERO-Long: alias of libero_10.",
    MINI_SUITE: "LIBERO-Goal mini: LIBERO-Goal tasks with scripted experts; its dataset is generated, not downloaded.",
    SCRIPTED_SUITE: "LIBERO-Goal scripted: every LIBERO-Goal task with a scripted expert (all 10), on generated demos.",
}


@dataclass(frozen=True)
class LiberoTaskSpec:
    bddl_name: str     # LIBERO's task.name (the BDDL / init-state file stem)
    instruction: str   # LIBERO's task.language
    problem_folder: str  # the LIBERO suite folder holding its BDDL and init-state files
    max_steps: int
    suite: str = ""      # the suite name it was listed under (picks the default render mode)


def language_from_name(bddl_name: str) -> str:
    """LIBERO's instruction rule: the file name without the SCENE prefix (LIBERO-100 names), spaces for underscores."""
    name = bddl_name
    if name[:1].isupper():
        at = name.find("SCENE")
        rest = name[at + len("SCENE"):]
        name = rest.split("_", 1)[1] if "_" in rest else rest
    return name.replace("_", " ")


def suite_names() -> list[str]:
    """Every LIBERO suite name this package registers (aliases included)."""
    return [*LIBERO_TASKS, *ALIASES, *GENERATED_SUITES]


def canonical(suite: str) -> str:
    """The LIBERO suite folder a suite name reads its tasks from (alias and mini resolved)."""
    if suite in LIBERO_TASKS:
        return suite
    if suite in ALIASES:
        return ALIASES[suite]
    if suite in GENERATED_SUITES:
        return "libero_goal"
    raise unknown_name("LIBERO suite", suite, suite_names())


def mini_tasks() -> tuple[str, ...]:
    """The BDDL names of libero_goal_mini: experts.MINI_TASKS when defined, else the placeholder."""
    try:
        from AlphaBrain.benchmarks.libero.experts import MINI_TASKS  # owned by the scripted experts
    except ImportError:
        return _MINI_PLACEHOLDER
    unknown = [t for t in MINI_TASKS if t not in LIBERO_TASKS["libero_goal"]]
    if unknown:
        raise ValueError(f"experts.MINI_TASKS names tasks outside libero_goal: {unknown}")
    return tuple(MINI_TASKS)


def scripted_tasks() -> tuple[str, ...]:
    """The BDDL names of libero_goal_scripted: experts.SCRIPTED_TASKS (every libero_goal task with an expert)."""
    from AlphaBrain.benchmarks.libero.experts import SCRIPTED_TASKS  # owned by the scripted experts

    return tuple(SCRIPTED_TASKS)


def suite_task_specs(suite: str) -> list[LiberoTaskSpec]:
    """The tasks of a suite in its official order (the generated suites: in libero_goal's order)."""
    folder = canonical(suite)
    names = LIBERO_TASKS[folder]
    if suite in GENERATED_SUITES:
        keep = set(mini_tasks() if suite == MINI_SUITE else scripted_tasks())
        names = tuple(n for n in names if n in keep)
    return [LiberoTaskSpec(n, language_from_name(n), folder, MAX_STEPS[folder], suite) for n in names]


def default_render_mode(suite: str) -> str:
    """"exact" (LIBERO's pixels: what policies trained on the published data expect) for the
    four suites; "fast" for libero_goal_mini and "lowpoly" for libero_goal_scripted, whose datasets are
    rendered by this package with the same settings as their evaluation. $ALPHABRAIN_LIBERO_RENDER
    overrides any (render.py)."""
    if suite == SCRIPTED_SUITE:
        return "lowpoly"
    return "fast" if suite in GENERATED_SUITES else "exact"


_REPO_ROOT = Path(__file__).resolve().parents[3]


def data_root() -> Path:
    """Where generated datasets go: $ALPHABRAIN_DATA_DIR, else <repo>/playground/datasets (as Meta-World)."""
    env = os.environ.get("ALPHABRAIN_DATA_DIR", "").strip()
    return Path(env).expanduser() if env else _REPO_ROOT / "playground" / "datasets"


def default_dataset_dir(suite: str) -> Path:
    """The generated dataset of libero_goal_mini or libero_goal_scripted: data_root() / <suite>."""
    if suite not in GENERATED_SUITES:
        raise ValueError(f"only {', '.join(GENERATED_SUITES)} have a generated dataset; {suite} reads "
                         "LEROBOT_LIBERO_DATA_DIR")
    return data_root() / suite
