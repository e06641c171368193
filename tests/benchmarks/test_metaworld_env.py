"""MetaWorldEnv: experts succeed, frames are right side up and independent of other envs, seeds are reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from AlphaBrain.benchmarks import get_suite
from AlphaBrain.benchmarks.metaworld import METAWORLD_STREAMS
from AlphaBrain.utils.errors import UserError

pytestmark = pytest.mark.usefixtures("metaworld_available")


def _env(name, **kw):
    from AlphaBrain.benchmarks.metaworld import MetaWorldEnv

    return MetaWorldEnv(name, **kw)


def _rollout(env, seed, steps):
    """Frames and states of the expert's first `steps` steps on the layout of `seed`."""
    from AlphaBrain.benchmarks.metaworld import expert_policy

    expert = expert_policy(env.env_name)
    obs = env.reset(seed)
    frames, states = [obs["images"][0]], [obs["full_obs"]]
    for _ in range(steps):
        obs, _, _ = env.step(expert.get_action(obs["full_obs"]))
        frames.append(obs["images"][0])
        states.append(obs["full_obs"])
    return np.stack(frames), np.stack(states)


def test_steps_without_a_frame_change_nothing_but_the_frames():
    """Evaluation renders only the frame before a policy query (step(render=False) otherwise)."""
    from AlphaBrain.benchmarks.metaworld import expert_policy

    env = _env("reach-v3", image_size=(32, 32))
    try:
        expert = expert_policy(env.env_name)

        def episode(render_every):
            obs = env.reset(5)
            out = []
            for i in range(1, 13):
                obs, success, done = env.step(expert.get_action(obs["full_obs"]), render=i % render_every == 0)
                out.append((obs, success, done))
            return out

        every, some = episode(1), episode(4)
        for i, ((a, sa, da), (b, sb, db)) in enumerate(zip(every, some), 1):
            np.testing.assert_array_equal(a["full_obs"], b["full_obs"])
            assert (sa, da) == (sb, db)
            if i % 4:
                assert b["images"] == []
            else:
                np.testing.assert_array_equal(a["images"][0], b["images"][0])
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("task_index", range(len(METAWORLD_STREAMS["metaworld_cl10"])))
def test_expert_solves_every_cl10_task(task_index):
    from AlphaBrain.benchmarks.metaworld import expert_policy

    suite = get_suite("metaworld_cl10")
    task = suite.tasks[task_index]
    env = _env(task.env_name, render=False, max_steps=task.max_steps)
    expert = expert_policy(task.env_name)
    wins = 0
    try:
        for trial in range(3):  # evaluation layouts: the suite's episode limit must leave the expert room
            obs = env.reset(suite.eval_seed(task_index, trial))
            done = success = False
            while not done:
                obs, success, done = env.step(expert.get_action(obs["full_obs"]))
            wins += success
    finally:
        env.close()
    assert wins >= 2, f"{task.env_name}: expert succeeded in {wins}/3 episodes within {task.max_steps} steps"


def test_observation_contract():
    env = _env("drawer-open-v3", image_size=(48, 40))
    try:
        obs = env.reset(0)
        assert set(obs) == {"images", "state", "full_obs"}
        assert len(obs["images"]) == 1
        img = obs["images"][0]
        assert img.dtype == np.uint8 and img.shape == (48, 40, 3) and img.flags["C_CONTIGUOUS"]
        assert obs["state"].dtype == np.float32 and obs["state"].shape == (4,)
        assert obs["full_obs"].shape == (39,)
        np.testing.assert_allclose(obs["state"], obs["full_obs"][:4].astype(np.float32))
        assert env.max_steps == 140 and env.instruction == "pull the drawer open" and env.env_name == "drawer-open-v3"
        obs, success, done = env.step(np.array([5.0, 0.0, 0.0, 0.0]))  # out of range: clipped, not an error
        assert isinstance(success, bool) and isinstance(done, bool)
        with pytest.raises(ValueError):
            env.step(np.zeros(3))
    finally:
        env.close()


def test_done_at_the_step_limit_and_no_step_after_it():
    env = _env("reach-v3", render=False, max_steps=5)
    try:
        env.reset(1)
        dones = [env.step(np.zeros(4))[2] for _ in range(5)]
        assert dones == [False] * 4 + [True]
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros(4))
        env.reset(2)  # a new episode can start
        env.step(np.zeros(4))
    finally:
        env.close()


def test_unknown_env_and_camera_list_the_valid_ones():
    with pytest.raises(UserError, match="drawer-open-v3"):
        _env("drawer-opn-v3")
    with pytest.raises(UserError, match="corner4"):
        _env("drawer-open-v3", camera="front")


def test_frames_do_not_depend_on_other_envs():
    """Each env renders into its own GL context, whatever other envs did in between."""
    a = _env("drawer-open-v3")
    alone, _ = _rollout(a, seed=5, steps=6)
    b = _env("window-open-v3")  # a second context, made current at creation
    other = b.reset(3)["images"][0]
    c = _env("plate-slide-v3", image_size=(96, 96))  # a third, of another size
    c.reset(0)
    try:
        again, _ = _rollout(a, seed=5, steps=6)
        assert np.abs(again.astype(np.int16) - alone.astype(np.int16)).mean() < 1.0
        assert np.array_equal(again, alone)
        assert np.abs(other.astype(np.int16) - alone[0].astype(np.int16)).mean() > 5  # a different scene
        # Interleaved stepping of two envs: a's frames are still those it makes alone.
        from AlphaBrain.benchmarks.metaworld import expert_policy

        ea, eb = expert_policy("drawer-open-v3"), expert_policy("window-open-v3")
        oa, ob = a.reset(5), b.reset(3)
        frames = [oa["images"][0]]
        for _ in range(6):
            oa, _, _ = a.step(ea.get_action(oa["full_obs"]))
            ob, _, _ = b.step(eb.get_action(ob["full_obs"]))
            c.render()
            frames.append(oa["images"][0])
        assert np.array_equal(np.stack(frames), alone)
    finally:
        for env in (a, b, c):
            env.close()


@pytest.mark.parametrize("env_name", ["drawer-open-v3", "plate-slide-v3", "window-open-v3"])
def test_images_are_right_side_up_and_not_mirrored(env_name):
    env = _env(env_name)
    try:
        img = env.reset(0)["images"][0].astype(np.int16)
    finally:
        env.close()
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    table = (r > g + 15) & (g > b + 5) & (r > 60) & (r < 200)  # the brown wooden table top
    arm = (r > 100) & (r > 2 * g) & (r > 2 * b)                 # the red Sawyer arm
    h, w = table.shape
    # Right side up: the table fills the lower half, the (black) background the upper one.
    assert table[h // 2:].mean() > 0.4 and table[: h // 2].mean() < 0.15
    # Not mirrored: seen from corner4 the robot stands on the left of the table.
    assert arm[:, : w // 2].mean() > 3 * arm[:, w // 2:].mean()


def test_same_seed_same_episode_other_seed_other_layout():
    env = _env("push-v3")
    other = _env("push-v3")
    try:
        frames1, states1 = _rollout(env, seed=11, steps=5)
        _rollout(env, seed=12, steps=9)  # history must not matter
        frames2, states2 = _rollout(env, seed=11, steps=5)
        frames3, states3 = _rollout(other, seed=11, steps=5)  # nor which env instance
        assert np.array_equal(states1, states2) and np.array_equal(frames1, frames2)
        assert np.array_equal(states1, states3) and np.array_equal(frames1, frames3)
        layouts = {tuple(np.round(env.reset(s)["full_obs"][np.r_[4:7, 36:39]], 6)) for s in range(5)}
        assert len(layouts) == 5  # object and goal positions differ from seed to seed
        assert not np.array_equal(env.reset(0)["images"][0], env.reset(1)["images"][0])
    finally:
        env.close()
        other.close()


def test_suite_make_env_uses_the_task_settings():
    suite = get_suite("metaworld_cl5")
    task = suite.tasks[1]
    env = suite.make_env(task.name, image_size=(32, 32))
    try:
        assert env.instruction == task.instruction and env.max_steps == task.max_steps
        assert env.reset(suite.eval_seed(1, 0))["images"][0].shape == (32, 32, 3)
    finally:
        env.close()
