"""Task streams: the three partition modes, task_order / num_tasks, and bad streams."""

import pytest

from AlphaBrain.config.loader import BASE_CONFIG, compose_config, model_overlay_path
from AlphaBrain.training.continual_learning.datasets import TaskFilteredDataset, build_task_stream
from AlphaBrain.utils.errors import ConfigError, DatasetError, UserError


def cfg_for(task_sequence, *extra):
    overrides = [f"continual_learning.task_sequence={task_sequence}", *extra]
    return compose_config([BASE_CONFIG, model_overlay_path("tiny")], overrides)


def inline(path, **keys):
    items = [f"continual_learning.task_sequence.base_data_mix={path}"]
    items += [f"continual_learning.task_sequence.{k}={v}" for k, v in keys.items()]
    return compose_config([BASE_CONFIG, model_overlay_path("tiny")], items)


def test_by_task_index_yields_one_task_per_task_index(synthetic_dataset):
    stream = build_task_stream(inline(synthetic_dataset, task_stream_mode="by_task_index"))
    assert stream.mode == "by_task_index" and len(stream) == 3
    for position, task in enumerate(stream.tasks):
        assert isinstance(task, TaskFilteredDataset) and task.task_id == position
        sample = task[0]
        assert sample["task_id"] == position and sample["task_index"] == task.origin["task_index"]
        assert sample["lang"] == task.instruction
        # every frame of the view belongs to this task, and no data was copied
        assert {task.base_dataset[int(i)]["task_index"] for i in task.indices[:: max(1, len(task) // 5)]} == {
            task.origin["task_index"]
        }
    assert sum(len(t) for t in stream.tasks) == len(stream.base_dataset)


def test_task_order_and_num_tasks(synthetic_dataset):
    natural = build_task_stream(inline(synthetic_dataset, task_stream_mode="by_task_index"))
    ordered = build_task_stream(inline(synthetic_dataset, task_order="[2,0,1]", num_tasks=2))
    assert [t.name for t in ordered.tasks] == [natural.tasks[2].name, natural.tasks[0].name]
    assert ordered.to_json()["tasks"][0]["task_index"] == natural.tasks[2].origin["task_index"]


def test_by_dataset_and_auto_fallback(synthetic_mixture):
    by_ds = build_task_stream(inline(synthetic_mixture, task_stream_mode="by_dataset"))
    assert by_ds.mode == "by_dataset" and [t.name for t in by_ds.tasks] == ["part_0", "part_1"]
    # Each part has one task_index, so by_task_index on the mixture gives 2 tasks too; auto keeps it.
    auto = build_task_stream(inline(synthetic_mixture, task_stream_mode="auto"))
    assert len(auto) == 2


def test_auto_falls_back_to_by_dataset_when_task_index_gives_one_task(tmp_path):
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    single = write_synthetic_dataset(tmp_path / "one" / "only", num_tasks=1, episodes_per_task=2, episode_length=8,
                                     image_size=(16, 16), seed=1)
    write_synthetic_dataset(tmp_path / "one" / "other", num_tasks=1, episodes_per_task=2, episode_length=8,
                            image_size=(16, 16), seed=2)
    with pytest.raises(DatasetError, match="at least 2 tasks"):
        build_task_stream(inline(single, task_stream_mode="auto"))
    stream = build_task_stream(cfg_for(tmp_path / "one"))
    assert len(stream) == 2


def test_a_path_is_a_stream(synthetic_dataset):
    stream = build_task_stream(cfg_for(synthetic_dataset))
    assert len(stream) == 3 and stream.to_json()["tasks"][1]["instruction"]


def test_stream_errors(synthetic_dataset, tmp_path):
    with pytest.raises(UserError, match="Unknown task sequence.*libero_goal"):
        build_task_stream(cfg_for("libero_gaol"))
    with pytest.raises(ConfigError, match="task_order has positions \\[5\\]"):
        build_task_stream(inline(synthetic_dataset, task_order="[0,5]"))
    with pytest.raises(ConfigError, match="lists a task twice"):
        build_task_stream(inline(synthetic_dataset, task_order="[0,0]"))
    with pytest.raises(DatasetError, match="num_tasks=7.*only 3"):
        build_task_stream(inline(synthetic_dataset, num_tasks=7))
    with pytest.raises(ConfigError, match="task_stream_mode"):
        build_task_stream(inline(synthetic_dataset, task_stream_mode="by_task"))
    with pytest.raises(ConfigError, match="task_sequence.num_task\".*num_tasks"):
        build_task_stream(inline(synthetic_dataset, num_task=2))
    with pytest.raises(DatasetError, match="at least 2 tasks"):
        build_task_stream(inline(synthetic_dataset, num_tasks=1))


def test_named_libero_stream_needs_the_data_dir(monkeypatch):
    monkeypatch.delenv("LEROBOT_LIBERO_DATA_DIR", raising=False)
    with pytest.raises(ConfigError, match="LEROBOT_LIBERO_DATA_DIR"):
        build_task_stream(cfg_for("libero_goal"))


def test_missing_benchmark_demos_say_how_to_generate_them(monkeypatch, tmp_path):
    # The declared stream looks its data dir up when used, so the variable counts even when set late.
    monkeypatch.setenv("ALPHABRAIN_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match=f"{tmp_path}.*generate --stream metaworld_cl5"):
        build_task_stream(cfg_for("metaworld_cl5"))


@pytest.fixture(scope="module")
def shuffled_goal(tmp_path_factory):
    """A 10-task dataset whose task_index values carry the LIBERO-Goal instructions in reverse order."""
    from AlphaBrain.benchmarks.libero.tasks import suite_task_specs
    from AlphaBrain.dataloader import LeRobotSingleDataset
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    root = write_synthetic_dataset(tmp_path_factory.mktemp("goal") / "ds", num_tasks=10, episodes_per_task=1,
                                   episode_length=4, image_size=(8, 8), seed=0)
    ds = LeRobotSingleDataset(root, action_horizon=8)
    instructions = [spec.instruction for spec in suite_task_specs("libero_goal")]
    ds.tasks = {k: instructions[9 - k] for k in sorted(ds.tasks)}
    return ds, instructions


def test_libero_streams_follow_the_official_task_order(shuffled_goal):
    ds, instructions = shuffled_goal
    stream = build_task_stream(cfg_for("libero_goal"), base_dataset=ds)
    assert [t.instruction for t in stream.tasks] == instructions
    assert [t.origin["task_index"] for t in stream.tasks] == list(range(9, -1, -1))
    assert stream.tasks[0].name == "open_the_middle_drawer_of_the_cabinet"


def test_a_libero_dataset_without_a_suite_task_names_it(shuffled_goal):
    ds, instructions = shuffled_goal
    original = ds.tasks
    ds.tasks = {**ds.tasks, 0: "stack the cups"}  # task_index 0 held "put the wine bottle on the rack"
    try:
        with pytest.raises(DatasetError, match="missing put_the_wine_bottle_on_the_rack; not in the stream stack_the_cups"):
            build_task_stream(cfg_for("libero_goal"), base_dataset=ds)
    finally:
        ds.tasks = original


def test_task_order_refines_a_named_stream_in_its_official_order(shuffled_goal):
    """`--dataset libero_goal -- continual_learning.task_sequence.task_order=[2,0,1]` keeps the stream's
    name and official order; the positions pick from that order."""
    ds, instructions = shuffled_goal
    cfg = cfg_for("libero_goal", "continual_learning.task_sequence.task_order=[2,0,1]")
    assert dict(cfg.continual_learning.task_sequence) == {"name": "libero_goal", "task_order": [2, 0, 1]}
    stream = build_task_stream(cfg, base_dataset=ds)
    assert stream.name == "libero_goal"
    assert [t.instruction for t in stream.tasks] == [instructions[2], instructions[0], instructions[1]]


def test_an_unknown_stream_name_inside_a_block_lists_the_declared_ones():
    with pytest.raises(UserError, match='Unknown task sequence.*"libero_gaol".*Did you mean "libero_goal"'):
        build_task_stream(cfg_for("libero_gaol", "continual_learning.task_sequence.num_tasks=2"))
