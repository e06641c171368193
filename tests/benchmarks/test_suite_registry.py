"""The suite registry and the Meta-World catalog: names, seeds, CL sequences (no simulator needed)."""

from __future__ import annotations

import pytest

from AlphaBrain.benchmarks import SUITES, Suite, SuiteTask, get_suite, list_suites, register_suite
from AlphaBrain.benchmarks.metaworld import METAWORLD_STREAMS, TASKS, default_dataset_dir
from AlphaBrain.benchmarks.metaworld.tasks import EVAL_SEED_BASE, MAX_SEED, eval_seed, train_seed
from AlphaBrain.utils.text import slugify
from AlphaBrain.utils.errors import UserError


def test_builtin_suites_are_listed():
    assert {"metaworld_cl5", "metaworld_cl10"} <= set(list_suites())


def test_unknown_suite_lists_the_valid_ones():
    with pytest.raises(UserError) as err:
        get_suite("metaworld_cl6")
    msg = str(err.value)
    assert "metaworld_cl5" in msg and "metaworld_cl10" in msg and 'Did you mean' in msg


@pytest.mark.parametrize("name", sorted(METAWORLD_STREAMS))
def test_suite_tasks_match_the_stream(name):
    suite = get_suite(name)
    assert suite.name == name
    assert [t.env_name for t in suite.tasks] == METAWORLD_STREAMS[name]
    for t in suite.tasks:
        assert t.name == slugify(t.instruction)  # the names a training stream gives its tasks
        assert 50 <= t.max_steps <= 200
    assert len(set(suite.task_names)) == len(suite.tasks)
    assert len({t.instruction for t in suite.tasks}) == len(suite.tasks)
    assert suite.dataset_dir() == default_dataset_dir(name)


def test_unknown_task_lists_the_valid_ones():
    suite = get_suite("metaworld_cl5")
    with pytest.raises(UserError) as err:
        suite.make_env("open_the_drawer")
    for name in suite.task_names:
        assert name in str(err.value)


def test_eval_seeds_are_disjoint_from_training_seeds():
    suite = get_suite("metaworld_cl10")
    evals = {suite.eval_seed(i, k) for i in range(len(suite.tasks)) for k in range(200)}
    assert len(evals) == 10 * 200
    assert min(evals) >= EVAL_SEED_BASE
    trains = {train_seed(s, i, a) for s in (0, 1, 7, MAX_SEED) for i in range(10) for a in range(200)}
    assert len(trains) == 4 * 10 * 200
    assert max(trains) < EVAL_SEED_BASE
    assert not evals & trains
    # The extremes of the documented ranges stay on their side.
    assert train_seed(MAX_SEED, 99, 9_999) < eval_seed(0, 0)
    with pytest.raises(UserError):
        train_seed(MAX_SEED + 1, 0, 0)
    with pytest.raises(UserError):
        suite.eval_seed(len(suite.tasks), 0)


def test_register_suite_and_factory_contract():
    task = SuiteTask("do_it", "fake-v0", "do it", 10)
    factory = lambda: Suite("fake_suite", [task], lambda t, size: (t.env_name, size),  # noqa: E731
                            eval_seed_fn=lambda i, k: 5 + k)
    try:
        register_suite("fake_suite", factory)
        suite = get_suite("fake_suite")
        assert suite.make_env("do_it", image_size=32) == ("fake-v0", (32, 32))
        assert suite.eval_seed(0, 2) == 7
        with pytest.raises(UserError):
            suite.dataset_dir()
        with pytest.raises(ValueError):
            register_suite("fake_suite", factory)
    finally:
        SUITES.pop("fake_suite", None)


def test_metaworld_streams_are_declared_for_the_stream_registry(monkeypatch, tmp_path):
    from AlphaBrain.streams import CL_TASK_SEQUENCES, get_task_sequence, stream_names

    monkeypatch.setenv("ALPHABRAIN_DATA_DIR", str(tmp_path))
    assert set(METAWORLD_STREAMS) <= set(stream_names()) and set(METAWORLD_STREAMS) <= set(CL_TASK_SEQUENCES)
    for name, envs in METAWORLD_STREAMS.items():
        seq = get_task_sequence(name)
        assert seq["base_data_mix"] == str(tmp_path / name)  # read when used, not at import
        assert seq["num_tasks"] == len(envs)
        assert seq["task_stream_mode"] == "by_task_index"
        assert "generate --stream " + name in seq["missing_hint"]


def test_slugify_matches_the_training_streams():
    from AlphaBrain.benchmarks.suite_types import slugify as suite_slugify  # the one shared rule

    for text in [spec.instruction for spec in TASKS.values()] + ["Open the DOOR!", "  x--y  ", "***", "a_b c"]:
        assert suite_slugify(text) == slugify(text)


def test_catalog_instructions_are_distinct():
    slugs = [slugify(spec.instruction) for spec in TASKS.values()]
    assert len(set(slugs)) == len(slugs)
    for stream in METAWORLD_STREAMS.values():
        assert all(env in TASKS for env in stream)
