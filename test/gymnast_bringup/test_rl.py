from gymnast_bringup.rl import agreeing_tasks, agrees, task_gaps


def test_agreement_is_checked_per_task_not_on_the_mean():
    real = {"reach": 0.2, "push": 0.0, "drawer": 1.0, "button": 1.0}
    dream = {"reach": 0.6, "push": 0.8, "drawer": 0.2, "button": 0.2}  # measured before RL; means 0.45 vs 0.55
    gaps = task_gaps(real, dream)
    assert gaps["push"] == 0.8 and gaps["drawer"] == -0.8
    assert not agrees(gaps, 0.2)
    assert agrees(task_gaps(real, {"reach": 0.3, "push": 0.1, "drawer": 0.9, "button": 0.8}), 0.2)


def test_the_gate_keeps_only_the_tasks_the_dream_gets_right():
    gaps = task_gaps({"reach": 0.6, "push": 0.1, "drawer": 1.0}, {"reach": 0.6, "push": 0.6, "drawer": 0.85})
    assert agreeing_tasks(gaps, 0.2) == ["reach", "drawer"]
    assert agreeing_tasks(gaps, 0.0) == ["reach"]
