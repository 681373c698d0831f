import pytest

from taskshare import TaskshareError
from taskshare.evaluate.delta import delta_m, relative_gains, sharing_warnings


def test_delta_m_by_hand_with_a_lower_is_better_metric():
    # accuracy 0.80 -> 0.88: +10%; MAE 2.0 -> 2.5: worse by 25% -> -25%; mean -7.5
    multi, single = {"acc": 0.88, "err": 2.5}, {"acc": 0.80, "err": 2.0}
    hib = {"acc": True, "err": False}
    assert relative_gains(multi, single, hib) == pytest.approx({"acc": 10.0, "err": -25.0})
    assert delta_m(multi, single, hib) == pytest.approx(-7.5)
    assert delta_m(single, single, hib) == 0.0


def test_zero_baseline_and_missing_baseline_are_errors():
    with pytest.raises(TaskshareError, match="baseline's metric is 0"):
        delta_m({"a": 1.0}, {"a": 0.0}, {"a": True})
    with pytest.raises(TaskshareError, match="no single-task baseline for task 'b'"):
        delta_m({"b": 1.0}, {"a": 1.0}, {"a": True, "b": True})


def test_warnings_name_hurt_tasks_and_hint_capacity():
    notes = sharing_warnings("hard", {"a": -3.0, "b": -1.0, "c": 2.0})
    assert notes[0].startswith("negative transfer: hard hurts task 'a' by 3.0%")
    assert any("too small" in n for n in notes)
    assert sharing_warnings("hard", {"a": 1.0, "b": -0.2}) == []
