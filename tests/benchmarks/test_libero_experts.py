"""libero_goal_mini: the scripted experts solve their tasks, and their demos read back as a LIBERO dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from AlphaBrain.benchmarks.libero.experts import MINI_TASKS, SCRIPTED_TASKS
from AlphaBrain.utils.errors import DatasetError, UserError

from conftest import MINI_ARGS

os.environ.setdefault("MUJOCO_GL", "egl")


# ---------------------------------------------------------------------------- no simulator


def test_mini_tasks_are_libero_goal_tasks_in_official_order():
    from AlphaBrain.benchmarks.libero.experts import EXPERTS, MINI_TASKS, expert_strategies
    from AlphaBrain.benchmarks.libero.tasks import LIBERO_TASKS

    goal = list(LIBERO_TASKS["libero_goal"])
    assert len(MINI_TASKS) >= 4
    assert all(t in goal for t in MINI_TASKS)
    assert [goal.index(t) for t in MINI_TASKS] == sorted(goal.index(t) for t in MINI_TASKS)
    assert tuple(EXPERTS) == SCRIPTED_TASKS
    assert all(expert_strategies()[t] for t in SCRIPTED_TASKS)


def test_scripted_tasks_are_official_order_and_mini_stays_its_five_tasks():
    from AlphaBrain.benchmarks.libero.tasks import LIBERO_TASKS, MINI_SUITE, suite_task_specs

    goal = list(LIBERO_TASKS["libero_goal"])
    assert [goal.index(t) for t in SCRIPTED_TASKS] == sorted(goal.index(t) for t in SCRIPTED_TASKS)
    assert set(MINI_TASKS) < set(SCRIPTED_TASKS)
    # libero_goal_mini's cached datasets and trained checkpoints are keyed to these five tasks
    assert MINI_TASKS == ("put_the_bowl_on_the_stove", "push_the_plate_to_the_front_of_the_stove",
                          "put_the_cream_cheese_in_the_bowl", "turn_on_the_stove", "put_the_bowl_on_the_plate")
    assert [s.bddl_name for s in suite_task_specs(MINI_SUITE)] == list(MINI_TASKS)


def test_experts_import_no_simulator():
    code = ("import sys; import AlphaBrain.benchmarks.libero.experts as e; "
            "bad = [m for m in ('mujoco', 'robosuite', 'libero') if m in sys.modules]; "
            "assert not bad, bad; print(len(e.MINI_TASKS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_unknown_task_lists_the_valid_ones():
    from AlphaBrain.benchmarks.libero.experts import make_expert

    with pytest.raises(UserError) as err:
        make_expert("open_the_microwave")
    assert all(t in str(err.value) for t in SCRIPTED_TASKS)
    assert make_expert("put the bowl on the plate").task_name == "put_the_bowl_on_the_plate"  # instruction works


class _FakeEnv:
    """Just what an expert reads: raw_obs (poses) and raw_env.sim (fixture sites, geoms, bodies, joints)."""

    class _Names:
        def __init__(self, names):
            self.names = list(names)

        def __call__(self, name):
            return self.names.index(name)

    def __init__(self, eef, quat=(1.0, 0.0, 0.0, 0.0)):
        sites = ["flat_stove_1_cook_region", "flat_stove_1_burner", "main_table_stove_front_region",
                 "wooden_cabinet_1_top_side", "wooden_cabinet_1_top_region", "wine_rack_1_top_region"]
        model = type("M", (), {})()
        model.site_name2id = self._Names(sites)
        model.geom_name2id = self._Names(["flat_stove_1_g22", "wooden_cabinet_1_g18", "wooden_cabinet_1_g29"])
        model.body_name2id = self._Names(["flat_stove_1_button"])
        model.get_joint_qpos_addr = self._Names(["flat_stove_1_button", "wooden_cabinet_1_top_level",
                                                 "wooden_cabinet_1_middle_level"])
        data = type("D", (), {})()
        data.site_xpos = np.array([[-0.25, 0.2, 0.905], [-0.25, 0.2, 0.927], [-0.05, 0.21, 0.895],
                                   [0.036, -0.25, 1.127], [0.036, -0.245, 1.091], [-0.267, -0.171, 1.137]])
        data.geom_xpos = np.array([[-0.368, 0.203, 0.92], [0.042, -0.132, 1.089], [0.042, -0.132, 1.015]])
        data.body_xpos = np.array([[-0.404, 0.202, 0.905]])
        data.qpos = np.array([0.0, 0.0, 0.0])
        self.raw_env = type("E", (), {"sim": type("S", (), {"model": model, "data": data})()})()
        self.raw_obs = {"robot0_eef_pos": np.asarray(eef, dtype=np.float64), "robot0_eef_quat": np.asarray(quat),
                        "akita_black_bowl_1_pos": np.array([-0.08, 0.0, 0.898]),
                        "plate_1_pos": np.array([0.05, -0.01, 0.902]),
                        "cream_cheese_1_pos": np.array([-0.05, 0.13, 0.909]),
                        "wine_bottle_1_pos": np.array([-0.21, -0.052, 0.899])}


def test_expert_actions_are_clipped_float32_and_seeded():
    from AlphaBrain.benchmarks.libero.experts import make_expert

    for task in SCRIPTED_TASKS:
        runs = []
        for _ in range(2):
            env = _FakeEnv([-0.2, 0.0, 1.18])
            expert = make_expert(task, seed=7, noise=0.5)  # large noise: the clipping must hold
            expert.reset(env)
            actions = []
            for _ in range(30):
                a = expert.act(env)
                actions.append(a)
                env.raw_obs["robot0_eef_pos"] = env.raw_obs["robot0_eef_pos"] + 0.05 * a[:3] * 0.5
            runs.append(np.stack(actions))
        assert runs[0].dtype == np.float32 and runs[0].shape == (30, 7)
        assert np.all(np.abs(runs[0]) <= 1.0)
        assert np.all(np.isin(runs[0][:, 6], [-1.0, 1.0]))  # binary gripper, as in LIBERO's data
        np.testing.assert_array_equal(runs[0], runs[1])  # same seed, same actions
        other = make_expert(task, seed=8, noise=0.5)
        other.reset(_FakeEnv([-0.2, 0.0, 1.18]))
        assert not np.array_equal(other.act(_FakeEnv([-0.2, 0.0, 1.18])), runs[0][0])


def test_expert_keeps_its_action_before_the_noise_for_clean_labels():
    from AlphaBrain.benchmarks.libero.experts import make_expert

    for task in SCRIPTED_TASKS:
        noisy, clean = make_expert(task, seed=3, noise=0.3), make_expert(task, seed=3, noise=0.0)
        env_noisy, env_clean = _FakeEnv([-0.2, 0.0, 1.18]), _FakeEnv([-0.2, 0.0, 1.18])
        noisy.reset(env_noisy)
        clean.reset(env_clean)
        executed = noisy.act(env_noisy)
        np.testing.assert_array_equal(noisy.clean_action, clean.act(env_clean))  # same state, no noise
        np.testing.assert_array_equal(clean.clean_action, clean.act(env_clean))  # noise 0: executed == clean
        assert not np.array_equal(executed, noisy.clean_action)
        assert noisy.clean_action.dtype == np.float32 and np.all(np.abs(noisy.clean_action) <= 1.0)


def test_record_episode_executes_the_action_and_records_the_label():
    from AlphaBrain.benchmarks.demo_collection import record_episode

    class Env:
        def __init__(self):
            self.executed = []

        def step(self, action):
            self.executed.append(action)
            obs = {"images": [np.zeros((4, 4, 3), np.uint8)], "state": np.zeros(2, np.float32)}
            return obs, len(self.executed) >= 3, {}

    obs = {"images": [np.zeros((4, 4, 3), np.uint8)], "state": np.zeros(2, np.float32)}
    counter = iter(range(100))
    act = lambda _: np.full(2, next(counter), np.float32)  # noqa: E731
    env = Env()
    episode = record_episode(env, obs, act, ["image"], max_steps=10, tail_steps=1, label=lambda: np.full(2, -1, np.float32))
    assert len(env.executed) == 4 and [a[0] for a in env.executed] == [0, 1, 2, 3]
    np.testing.assert_array_equal(episode["action"], np.full((4, 2), -1, np.float32))
    env, counter = Env(), iter(range(100))
    episode = record_episode(env, obs, act, ["image"], max_steps=10, tail_steps=1)
    np.testing.assert_array_equal(episode["action"], np.stack(env.executed))  # no label: the executed action


def test_clean_labels_are_part_of_the_cache_key_and_checked(tmp_path):
    from AlphaBrain.benchmarks import demo_generation as demos
    from AlphaBrain.benchmarks.libero.generate import generate_stream_dataset, generation_params
    from AlphaBrain.benchmarks.libero.tasks import MINI_SUITE, suite_task_specs

    specs = suite_task_specs(MINI_SUITE)
    request = demos.demo_request(tmp_path / "d", 2, 0, (32, 32), 1, force=False, progress=False, log=lambda m: None,
                                 sides=(8, 1024))
    default = generation_params(MINI_SUITE, specs, request, "lowpoly", 0.05)
    assert "labels" not in default  # datasets made before the option stay reusable
    assert generation_params(MINI_SUITE, specs, request, "lowpoly", 0.05, "clean") == {**default, "labels": "clean"}
    with pytest.raises(UserError, match="labels must be one of executed, clean"):
        generate_stream_dataset(MINI_SUITE, tmp_path / "e", episodes_per_task=2, labels="noisy")


def test_expert_moves_towards_its_first_waypoint_pointing_down():
    from AlphaBrain.benchmarks.libero.experts import make_expert

    env = _FakeEnv([-0.2, 0.0, 1.18])
    expert = make_expert("put_the_bowl_on_the_plate", seed=0, noise=0.0)
    expert.reset(env)
    a = expert.act(env)
    assert a[0] > 0 and a[2] < 0 and a[6] == -1.0  # towards the bowl, down, gripper open
    # yaw 90 degrees requested for the rim grasp: the rotation action turns about world z only
    assert abs(a[3]) < 1e-6 and abs(a[4]) < 1e-6 and a[5] != 0


def test_train_seeds_count_down_from_the_last_init_state_and_avoid_eval_seeds():
    from AlphaBrain.benchmarks.libero.generate import SEED_CYCLES, train_env_seed

    seeds = [train_env_seed(0, a, 50) for a in range(SEED_CYCLES * 50)]
    assert [s % 50 for s in seeds[:3]] == [49, 48, 47] and seeds[50] % 50 == 49
    assert len(set(seeds)) == len(seeds) and min(seeds) >= 1000  # evaluation trial k uses seed k
    assert not set(seeds) & {train_env_seed(1, a, 50) for a in range(SEED_CYCLES * 50)}
    with pytest.raises(UserError):
        train_env_seed(1000, 0)


def test_unknown_stream_lists_the_valid_ones(tmp_path):
    from AlphaBrain.benchmarks.libero.generate import generate_stream_dataset

    with pytest.raises(UserError, match="libero_goal_mini"):
        generate_stream_dataset("libero_goal_minii", tmp_path / "x")


# ---------------------------------------------------------------------------- in the simulator

EVAL_INIT_STATES = range(5)  # the first evaluation trials (trial k -> init state k)


def _expert_wins(spec, init_states) -> list[bool]:
    from AlphaBrain.benchmarks.libero.env import LiberoEnv
    from AlphaBrain.benchmarks.libero.experts import make_expert

    env = LiberoEnv(spec, image_size=(32, 32))
    wins = []
    try:
        for k in init_states:  # the states the policy is evaluated on; the demos use other ones
            env.reset(k)
            expert = make_expert(spec.bddl_name, seed=k)
            expert.reset(env)
            done = success = False
            while not done:  # the expert reads the simulator, not the frames: none is rendered
                _, success, done = env.step(expert.act(env), render=False)
            wins.append(success)
    finally:
        env.close()
    return wins


@pytest.mark.slow
@pytest.mark.usefixtures("libero_available")
@pytest.mark.parametrize("task_index", range(len(MINI_TASKS)), ids=MINI_TASKS)
def test_expert_solves_its_task(task_index):
    from AlphaBrain.benchmarks.libero.tasks import MINI_SUITE, suite_task_specs

    specs = suite_task_specs(MINI_SUITE)
    assert [s.bddl_name for s in specs] == list(MINI_TASKS)
    spec = specs[task_index]
    wins = _expert_wins(spec, EVAL_INIT_STATES)
    assert np.mean(wins) >= 0.8, f"{spec.bddl_name}: expert succeeded in {sum(wins)}/{len(wins)} init states"


MORE_TASKS = [t for t in SCRIPTED_TASKS if t not in MINI_TASKS]  # the experts outside libero_goal_mini


@pytest.mark.slow
@pytest.mark.usefixtures("libero_available")
@pytest.mark.parametrize("task", MORE_TASKS, ids=MORE_TASKS)
def test_more_scripted_experts_solve_their_task(task):
    from AlphaBrain.benchmarks.libero.tasks import suite_task_specs

    spec = next(s for s in suite_task_specs("libero_goal") if s.bddl_name == task)
    wins = _expert_wins(spec, range(3))  # the full 0-9 table is in docs/benchmarks/libero_mini.md
    assert np.mean(wins) >= 0.8, f"{task}: expert succeeded in {sum(wins)}/{len(wins)} init states"


@pytest.fixture(scope="module")
def mini_dataset(libero_mini_data_dir):
    return libero_mini_data_dir / "libero_goal_mini"


@pytest.mark.slow
@pytest.mark.usefixtures("libero_available")
def test_mini_dataset_reads_back_as_a_libero_dataset(mini_dataset):
    from AlphaBrain.benchmarks.libero.experts import MINI_TASKS
    from AlphaBrain.benchmarks.libero.generate import MARKER, TAIL_STEPS
    from AlphaBrain.benchmarks.libero.tasks import MINI_SUITE, suite_task_specs
    from AlphaBrain.dataloader import LeRobotSingleDataset
    from AlphaBrain.dataloader.mixtures import LIBERO_EMBODIMENT, check_libero_features

    check_libero_features(mini_dataset)  # the features of the common LeRobot LIBERO conversions
    ds = LeRobotSingleDataset(mini_dataset, action_horizon=8)
    specs = suite_task_specs(MINI_SUITE)
    assert ds.embodiment == LIBERO_EMBODIMENT and ds.fps == 20 and ds.version == "v3.0"
    assert ds.tasks == {k: s.instruction for k, s in enumerate(specs)}
    assert len(ds.tasks) == len(MINI_TASKS)
    per_task = MINI_ARGS["episodes_per_task"]
    assert ds.episode_task_map() == {k: list(range(per_task * k, per_task * (k + 1))) for k in range(len(specs))}
    sample = ds[0]
    size = MINI_ARGS["image_size"]
    assert [im.shape for im in sample["image"]] == [(size, size, 3), (size, size, 3)]
    assert sample["image"][0].dtype == np.uint8
    assert sample["state"].shape == (8,) and sample["action"].shape == (8, 7)
    assert sample["lang"] == specs[0].instruction
    state, action = ds.raw_arrays()
    assert state.shape[1] == 8 and action.shape[1] == 7 and np.all(np.abs(action) <= 1.0)
    for ep in ds.episodes:
        assert TAIL_STEPS < ep.length <= specs[ep.task_index].max_steps
    info = json.loads((mini_dataset / "meta" / "info.json").read_text())
    summary = info[MARKER + "_summary"]
    assert [s["task"] for s in summary] == list(MINI_TASKS)
    assert all(s["attempts"] >= MINI_ARGS["episodes_per_task"] and 0 < s["success_rate"] <= 1 for s in summary)


@pytest.mark.slow
@pytest.mark.usefixtures("libero_available")
def test_mini_dataset_is_cached_and_other_parameters_are_refused(mini_dataset):
    from AlphaBrain.benchmarks.libero.generate import generate_stream_dataset

    stamp = (mini_dataset / "meta" / "info.json").stat().st_mtime_ns
    logs: list[str] = []
    assert generate_stream_dataset("libero_goal_mini", mini_dataset, **MINI_ARGS, workers=1, progress=False,
                                   log=logs.append) == mini_dataset
    assert any("Reusing" in m for m in logs)
    assert (mini_dataset / "meta" / "info.json").stat().st_mtime_ns == stamp
    with pytest.raises(DatasetError, match="episodes_per_task"):
        generate_stream_dataset("libero_goal_mini", mini_dataset, **{**MINI_ARGS, "episodes_per_task": 3}, workers=1,
                                progress=False, log=logs.append)


def test_scripted_stream_suite_and_generator_cover_every_libero_goal_task(monkeypatch, tmp_path):
    from AlphaBrain.benchmarks import get_suite
    from AlphaBrain.benchmarks.generate_cli import generators
    from AlphaBrain.benchmarks.libero.generate import STREAMS
    from AlphaBrain.benchmarks.libero.tasks import LIBERO_TASKS, default_render_mode
    from AlphaBrain.streams.registry import get_stream_spec

    assert SCRIPTED_TASKS == LIBERO_TASKS["libero_goal"]  # every task has an expert, in official order
    suite, goal = get_suite("libero_goal_scripted"), get_suite("libero_goal")
    assert suite.task_names == goal.task_names and {t.max_steps for t in suite.tasks} == {300}
    monkeypatch.setenv("ALPHABRAIN_DATA_DIR", str(tmp_path))
    assert suite.dataset_dir() == tmp_path / "libero_goal_scripted"
    stream = get_stream_spec("libero_goal_scripted")
    assert stream.num_tasks == 10 and list(stream.task_names) == suite.task_names
    assert stream.base_data_mix() == str(tmp_path / "libero_goal_scripted")
    assert get_stream_spec("libero_goal_mini").num_tasks == len(MINI_TASKS)  # unchanged
    assert "libero_goal_scripted" in STREAMS and "libero_goal_scripted" in generators()
    assert default_render_mode("libero_goal_scripted") == "lowpoly"


def test_measure_experts_refuses_a_task_without_expert():
    from AlphaBrain.benchmarks.libero.measure_experts import main

    with pytest.raises(UserError) as err:
        main(["--tasks", "open_the_microwave"])
    assert "put_the_wine_bottle_on_the_rack" in str(err.value)
