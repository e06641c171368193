"""CL metrics on hand-computed matrices. Rows = after training task k, columns = task i, both in train order."""

import json
import math

import numpy as np
import pytest

from AlphaBrain.evaluation import metrics as M

NAN = math.nan

# A 3-task run that forgets.
FORGETS = [
    [0.9, 0.1, 0.0],
    [0.5, 0.8, 0.2],
    [0.3, 0.6, 0.7],
]


def approx(x):
    return pytest.approx(x, abs=1e-12)


def test_three_tasks_with_forgetting():
    a = FORGETS
    # ASR = A_T = (0.3 + 0.6 + 0.7) / 3 = 1.6 / 3
    assert M.asr(a) == approx(1.6 / 3)
    assert M.average_accuracy(a) == approx(1.6 / 3)
    # BWT = ((0.3 - 0.9) + (0.6 - 0.8)) / 2 = (-0.6 - 0.2) / 2 = -0.4
    assert M.bwt(a) == approx(-0.4)
    # F: task 0: max(0.9, 0.5) - 0.3 = 0.6; task 1: max(0.8) - 0.6 = 0.2 -> (0.6 + 0.2) / 2 = 0.4
    assert M.forgetting(a) == approx(0.4)
    # A_k: k=0: 0.9; k=1: (0.5 + 0.8) / 2 = 0.65; k=2: 1.6 / 3 -> AIA = (0.9 + 0.65 + 0.5333..) / 3
    assert M.accuracy_over_time(a) == [approx(0.9), approx(0.65), approx(1.6 / 3)]
    assert M.average_incremental_accuracy(a) == approx((0.9 + 0.65 + 1.6 / 3) / 3)
    # diagonal: (0.9 + 0.8 + 0.7) / 3 = 0.8
    assert M.diagonal_mean(a) == approx(0.8)
    # just above the diagonal: (a[0][1] + a[1][2]) / 2 = (0.1 + 0.2) / 2 = 0.15
    assert M.zero_shot_next(a) == approx(0.15)
    # FWT with b = [0.0, 0.05, 0.1]: ((0.1 - 0.05) + (0.2 - 0.1)) / 2 = 0.075; no baseline -> None
    assert M.forward_transfer(a, [0.0, 0.05, 0.1]) == approx(0.075)
    assert M.forward_transfer(a) is None


def test_perfect_retention_gives_zero_bwt_and_forgetting():
    a = [
        [1.0, 0.0, 0.0],
        [1.0, 0.9, 0.0],
        [1.0, 0.9, 0.8],
    ]
    assert M.bwt(a) == 0.0
    assert M.forgetting(a) == 0.0
    # ASR = (1.0 + 0.9 + 0.8) / 3 = 0.9; diagonal is the same cells
    assert M.asr(a) == approx(0.9)
    assert M.diagonal_mean(a) == approx(0.9)
    assert M.zero_shot_next(a) == 0.0


def test_bwt_and_forgetting_differ_when_a_task_improves_after_its_training():
    # Task 0 keeps improving while task 1 is trained (0.4 -> 0.9), then drops to 0.6.
    a = [
        [0.4, 0.0, 0.0],
        [0.9, 0.8, 0.0],
        [0.6, 0.8, 1.0],
    ]
    # BWT compares with the diagonal: ((0.6 - 0.4) + (0.8 - 0.8)) / 2 = +0.1 (looks like positive transfer)
    assert M.bwt(a) == approx(0.1)
    # F compares with the peak over rows i..T-2: task 0: max(0.4, 0.9) - 0.6 = 0.3; task 1: 0.8 - 0.8 = 0
    # -> (0.3 + 0) / 2 = 0.15 (it did forget from its best)
    assert M.forgetting(a) == approx(0.15)


def test_forgetting_ignores_the_final_row_when_taking_the_peak():
    # The final row is not part of the max: max over l = i..T-2 only.
    a = [
        [0.5, 0.0],
        [0.9, 1.0],
    ]
    # F = (max(a[0][0]) - a[1][0]) / 1 = 0.5 - 0.9 = -0.4 (the final score beats the peak)
    assert M.forgetting(a) == approx(-0.4)
    assert M.bwt(a) == approx(0.4)


def test_nan_cells():
    # Upper triangle not evaluated (a common evaluator shortcut): everything but the next-task metrics works.
    a = np.array(FORGETS, dtype=float)
    a[np.triu_indices(3, 1)] = NAN
    assert M.bwt(a) == approx(-0.4) and M.forgetting(a) == approx(0.4)
    assert M.average_incremental_accuracy(a) == approx((0.9 + 0.65 + 1.6 / 3) / 3)
    assert M.zero_shot_next(a) is None
    assert M.forward_transfer(a, [0.0, 0.0, 0.0]) is None

    # A missing cell below the diagonal: F needs it (peak of task 0), BWT does not.
    b = np.array(FORGETS, dtype=float)
    b[1, 0] = NAN
    assert M.bwt(b) == approx(-0.4)
    assert M.forgetting(b) is None
    assert M.accuracy_over_time(b) == [approx(0.9), None, approx(1.6 / 3)]
    assert M.average_incremental_accuracy(b) is None

    # A missing cell in the final row: ASR averages the evaluated tasks, A_T (all tasks) is None.
    c = np.array(FORGETS, dtype=float)
    c[2, 2] = NAN
    assert M.asr(c) == approx((0.3 + 0.6) / 2)
    assert M.average_accuracy(c) is None
    assert M.bwt(c) == approx(-0.4)  # BWT does not use the last task's column
    c[2, 0] = NAN
    assert M.bwt(c) is None and M.forgetting(c) is None

    # A missing diagonal cell.
    d = np.array(FORGETS, dtype=float)
    d[0, 0] = NAN
    assert M.bwt(d) is None and M.forgetting(d) is None and M.diagonal_mean(d) is None

    # Nothing in the final row.
    e = np.array(FORGETS, dtype=float)
    e[2, :] = NAN
    assert M.asr(e) is None and M.average_accuracy(e) is None


def test_none_accepted_like_nan():
    a = [[0.9, None], [0.5, 0.8]]
    assert M.bwt(a) == approx(-0.4)
    assert M.zero_shot_next(a) is None


def test_single_task():
    a = [[0.7]]
    m = M.compute_metrics(a, initial=[0.1])
    assert m["asr"] == approx(0.7) and m["average_accuracy"] == approx(0.7)
    assert m["average_incremental_accuracy"] == approx(0.7) and m["diagonal_mean"] == approx(0.7)
    assert m["bwt"] is None and m["forgetting"] is None
    assert m["zero_shot_next"] is None and m["forward_transfer"] is None
    assert m["accuracy_over_time"] == [approx(0.7)]


def test_last_only_gives_asr_and_nothing_that_needs_earlier_checkpoints():
    a = np.full((3, 3), NAN)
    a[2] = [0.3, 0.6, 0.7]
    m = M.compute_metrics(a)
    assert m["asr"] == approx(1.6 / 3) and m["average_accuracy"] == approx(1.6 / 3)
    for key in ("bwt", "forgetting", "average_incremental_accuracy", "diagonal_mean", "zero_shot_next",
                "forward_transfer"):
        assert m[key] is None, key
    assert m["accuracy_over_time"] == [None, None, approx(1.6 / 3)]


def test_compute_metrics_returns_plain_floats_or_none():
    m = M.compute_metrics(np.array(FORGETS), initial=np.array([0.0, 0.05, 0.1]), curves=[[0.1, 0.9], [0.8], [0.7]])
    assert set(m) == set(M.SCALAR_METRICS) | {"accuracy_over_time"}
    for key in M.SCALAR_METRICS:
        assert type(m[key]) is float, key
    json.dumps(m)  # no numpy scalars


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="T x T"):
        M.bwt([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    with pytest.raises(ValueError, match="T x T"):
        M.asr([0.1, 0.2])
    with pytest.raises(ValueError, match="one value per task"):
        M.forward_transfer(FORGETS, [0.0, 0.1])


def test_aggregate_skips_none_and_reports_n():
    s = M.aggregate([0.5, None, 0.7])
    # mean 0.6, sample std sqrt(((0.1)^2 + (0.1)^2) / 1) = sqrt(0.02)
    assert s == {"mean": approx(0.6), "std": approx(math.sqrt(0.02)), "n": 2}
    assert M.aggregate([0.5]) == {"mean": 0.5, "std": None, "n": 1}
    assert M.aggregate([None]) == {"mean": None, "std": None, "n": 0}


def test_formatting():
    assert M.format_percent(0.976) == "97.6 %"
    assert M.format_pp(-0.012, signed=True) == "-1.2 pp"
    assert M.format_pp(0.02) == "2.0 pp"
    assert M.format_pp(-0.0001, signed=True) == "0.0 pp"  # no "-0.0"
    assert M.format_percent(None) == "—"


# ---- LIBERO's NBT, FWT and AUC (Liu et al. 2023) ------------------------------------------------

def test_nbt_averages_the_drop_over_every_later_checkpoint():
    # task 0: a[0][0] = 0.9, later 0.5 and 0.3 -> ((0.9 - 0.5) + (0.9 - 0.3)) / 2 = 0.5
    # task 1: a[1][1] = 0.8, later 0.6 -> 0.2; the last task has no later checkpoint
    # NBT = (0.5 + 0.2) / 2 = 0.35 (BWT of the same matrix is -0.4: only the final row)
    assert M.nbt(FORGETS) == approx(0.35)
    assert M.nbt([[0.7]]) is None
    holed = [row[:] for row in FORGETS]
    holed[1][0] = NAN  # needed by task 0's term
    assert M.nbt(holed) is None
    holed = [row[:] for row in FORGETS]
    holed[0][2] = NAN  # above the diagonal: not used
    assert M.nbt(holed) == approx(0.35)


def test_fwt_libero_holds_each_curve_at_its_first_peak():
    # task 0: 0.2, 0.6, 0.4 -> peak 0.6 at point 1 -> 0.2, 0.6, 0.6 -> 1.4 / 3
    # task 1: 0.1, 0.8, 0.8, 0.5 -> 0.1, 0.8, 0.8, 0.8 -> 2.5 / 4
    # task 2: 0.0, 0.7 -> 0.7 / 2
    curves = [[0.2, 0.6, 0.4], [0.1, 0.8, 0.8, 0.5], [0.0, 0.7]]
    assert M.fwt_libero_per_task(curves) == [approx(1.4 / 3), approx(2.5 / 4), approx(0.35)]
    assert M.fwt_libero(curves) == approx((1.4 / 3 + 2.5 / 4 + 0.35) / 3)
    # AUC_k = (FWT_k + sum of column k below the diagonal) / (T - k), on FORGETS:
    # k=0: (1.4/3 + 0.5 + 0.3) / 3; k=1: (0.625 + 0.6) / 2; k=2: 0.35 / 1
    want = ((1.4 / 3 + 0.8) / 3 + (0.625 + 0.6) / 2 + 0.35) / 3
    assert M.auc_libero(FORGETS, curves) == approx(want)
    m = M.compute_metrics(FORGETS, curves=curves)
    assert m["fwt_libero"] == approx((1.4 / 3 + 2.5 / 4 + 0.35) / 3) and m["auc_libero"] == approx(want)


def test_fwt_and_auc_are_null_without_a_curve():
    assert M.fwt_libero(None) is None and M.auc_libero(FORGETS, None) is None
    m = M.compute_metrics(FORGETS)
    assert m["fwt_libero"] is None and m["auc_libero"] is None and m["nbt"] == approx(0.35)
    one_missing = [[0.2, 0.6], None, [0.0, 0.7]]  # task 1's mid-task checkpoints were pruned
    assert M.fwt_libero_per_task(one_missing)[1] is None
    assert M.fwt_libero(one_missing) is None and M.auc_libero(FORGETS, one_missing) is None
    assert M.fwt_libero([[0.2, NAN], [0.1], [0.3]]) is None  # a point that was not evaluated
    holed = [row[:] for row in FORGETS]
    holed[2][0] = NAN
    assert M.auc_libero(holed, [[0.2], [0.1], [0.3]]) is None
    last_only = [[NAN] * 3, [NAN] * 3, [0.3, 0.6, 0.7]]
    assert M.nbt(last_only) is None and M.bwt(last_only) is None
