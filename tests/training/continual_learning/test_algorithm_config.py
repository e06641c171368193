"""Selecting algorithms from YAML: both styles, validation, and the hook-name guard."""

import pytest

from AlphaBrain.config.loader import compose_config
from AlphaBrain.training.continual_learning.algorithms import (
    ER,
    CLAlgorithm,
    algorithm_names,
    build_cl_algorithm,
    get_algorithm_class,
)
from AlphaBrain.training.continual_learning.algorithms.hparams import (
    Param,
    check_at_most,
    check_bool,
    check_float,
    check_ratio,
)
from AlphaBrain.utils.errors import ConfigError, UserError

GENERIC = [
    "continual_learning.replay.enabled=false",
    "continual_learning.algorithm.name=er",
    "continual_learning.algorithm.buffer_size_per_task=64",
    "continual_learning.algorithm.replay_batch_ratio=0.5",
    "continual_learning.algorithm.balanced_sampling=true",
]
LEGACY = [
    "continual_learning.replay.enabled=true",
    "continual_learning.replay.method=experience_replay",
    "continual_learning.replay.buffer_size_per_task=64",
    "continual_learning.replay.replay_batch_ratio=0.5",
    "continual_learning.replay.balanced_sampling=true",
]


def test_both_yaml_styles_build_the_same_er():
    generic = build_cl_algorithm(compose_config([], GENERIC))
    legacy = build_cl_algorithm(compose_config([], LEGACY))
    assert type(generic) is type(legacy) is ER
    assert generic.hparams == legacy.hparams == {
        "buffer_size_per_task": 64,
        "replay_batch_ratio": 0.5,
        "balanced_sampling": True,
    }


def test_neither_style_is_sequential_finetuning():
    algo = build_cl_algorithm(compose_config([], ["continual_learning.replay.enabled=false"]))
    assert algo.name == "sequential"


def test_base_config_defaults_to_er_with_seed_defaults():
    algo = build_cl_algorithm(compose_config([]))
    assert algo.hparams == {"buffer_size_per_task": 500, "replay_batch_ratio": 0.3, "balanced_sampling": False}


def test_generic_name_wins_over_enabled_legacy_block():
    cfg = compose_config([], ["continual_learning.algorithm.name=sequential"])
    assert build_cl_algorithm(cfg).name == "sequential"


@pytest.mark.parametrize("ratio", ["0", "1", "1.5", "-0.1"])
def test_replay_ratio_outside_open_interval_is_rejected(ratio):
    with pytest.raises(ConfigError, match="replay_batch_ratio must be strictly between 0 and 1"):
        build_cl_algorithm(compose_config([], [f"continual_learning.replay.replay_batch_ratio={ratio}"]))


def test_unknown_algorithm_lists_valid_ones():
    with pytest.raises(UserError, match=r'Unknown CL algorithm.*"err".*Did you mean "er".*sequential'):
        build_cl_algorithm(compose_config([], ["continual_learning.algorithm.name=err"]))


def test_unknown_hyperparameter_suggests_closest():
    with pytest.raises(ConfigError, match=r'"continual_learning.algorithm.buffer_size".*buffer_size_per_task'):
        build_cl_algorithm(compose_config([], ["continual_learning.algorithm.name=er",
                                               "continual_learning.algorithm.buffer_size=3"]))


def test_unknown_legacy_method():
    with pytest.raises(ConfigError, match="replay.method"):
        build_cl_algorithm(compose_config([], ["continual_learning.replay.method=gem"]))


def test_aliases_resolve():
    assert get_algorithm_class("experience_replay") is ER
    assert get_algorithm_class("none").name == "sequential"
    assert {"er", "sequential"} <= set(algorithm_names())


@pytest.mark.parametrize("typo", ["on_task_ends", "modify_batches", "after_backwards", "compute_penalties", "on_train_end"])
def test_misspelled_hook_fails_at_class_definition(typo):
    with pytest.raises(TypeError, match="looks like a CL hook"):
        type("Broken", (CLAlgorithm,), {typo: lambda self, *a: None})


def test_helper_methods_with_unrelated_names_are_allowed():
    cls = type("Fine", (CLAlgorithm,), {"fisher_diagonal": lambda self: None, "on_task_end": lambda self, ctx: None})
    assert issubclass(cls, CLAlgorithm)


def test_state_from_another_algorithm_is_rejected():
    er = ER()
    with pytest.raises(ConfigError, match='written by algorithm "sequential"'):
        er.load_state_dict({"name": "sequential"})


def test_er_hyperparameters_from_either_block_after_algo_er():
    # run_cl_train.sh --algo er selects the legacy block; both spellings of a hyperparameter must work.
    legacy = ["continual_learning.algorithm.name=null", "continual_learning.replay.enabled=true"]
    a = build_cl_algorithm(compose_config([], [*legacy, "continual_learning.algorithm.buffer_size_per_task=7"]))
    b = build_cl_algorithm(compose_config([], [*legacy, "continual_learning.replay.buffer_size_per_task=7"]))
    c = build_cl_algorithm(compose_config([], ["continual_learning.algorithm.name=er",
                                               "continual_learning.replay.buffer_size_per_task=7"]))
    assert a.hparams["buffer_size_per_task"] == b.hparams["buffer_size_per_task"] == c.hparams["buffer_size_per_task"] == 7


def test_boolean_buffer_size_is_rejected():
    with pytest.raises(ConfigError, match=r"continual_learning\.algorithm\.buffer_size_per_task must be an integer >= 1, got True"):
        ER(buffer_size_per_task=True)


def test_constructor_checks_like_from_config():
    assert ER(replay_batch_ratio=0.5).hparams == {**ER.defaults(), "replay_batch_ratio": 0.5}
    with pytest.raises(ConfigError, match=r'"continual_learning.algorithm.buffer_size".*Did you mean "buffer_size_per_task"'):
        ER(buffer_size=3)


def test_every_builtin_hyperparameter_is_declared_with_its_check():
    for name in algorithm_names():
        for key, spec in get_algorithm_class(name).HYPERPARAMETERS.items():
            assert isinstance(spec, Param), (name, key)
            assert spec.validate(key, spec.default) is not None or spec.nullable, (name, key)


def test_algorithms_that_read_param_grad_declare_it():
    assert {n for n in algorithm_names() if get_algorithm_class(n).needs_param_grad} == {"agem", "packnet", "si"}


@pytest.mark.parametrize("check, args, message", [
    (check_float, ("ewc_gamma", 1.5, 0.0), r"ewc_gamma must be a finite number in \[0, 1\], got 1\.5"),
    (check_ratio, ("replay_batch_ratio", True), r"replay_batch_ratio must be strictly between 0 and 1, got True"),
    (check_bool, ("online", 1), r"online must be true or false, got 1"),
    (check_at_most, ("mir_top_k", 9, "mir_candidate_size", 8), r"mir_top_k = 9 exceeds mir_candidate_size = 8"),
])
def test_checks_name_the_key_the_value_and_the_range(check, args, message):
    kwargs = {"maximum": 1.0} if check is check_float else {}
    with pytest.raises(ConfigError, match=rf"continual_learning\.algorithm\.{message}"):
        check(*args, **kwargs)
