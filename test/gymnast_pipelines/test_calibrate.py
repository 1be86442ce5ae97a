"""`gymnast judge-eval`: fresh per-task test sets from every source, and the per-task report."""

from dataclasses import replace

import numpy as np
import pytest

from gymnast_core.envs.metaworld_env import RealityConfig, instruction_for
from gymnast_core.names import EVAL_SEED_OFFSET, JUDGE_TEST_SEEDS
from gymnast_reward.api_judge import ApiJudgeConfig
from gymnast_pipelines.calibrate import (DREAMED, JUMP, REAL, JudgeEvalConfig, evaluate_judge, format_results, judge_test_jobs,
                                      metrics_by, operating_points)
from gymnast_reward.judges import JudgeConfig
from gymnast_pipelines.train_judge import LabelledVideos, jump_to_goal
from gymnast_world_model.dream_env import DreamConfig


def test_operating_points_trade_true_positives_for_false_positives():
    labels = np.array([1, 1, 0, 0, 0])
    scores = np.array([0.95, 0.65, 0.75, 0.55, np.nan])
    known = np.array([True, True, True, True, False])
    points = operating_points(labels, scores, known, thresholds=(0.5, 0.7, 0.9))
    assert (points["0.50"]["tpr"], points["0.50"]["fpr"]) == (1.0, 1.0)
    assert (points["0.70"]["tpr"], points["0.70"]["fpr"]) == (0.5, 0.5)
    assert (points["0.90"]["tpr"], points["0.90"]["fpr"], points["0.90"]["unknown"]) == (0.5, 0.0, 1)


def test_per_task_metrics_say_where_the_misses_are_with_standard_errors():
    labels = np.array([1, 1, 0, 1, 0, 0])
    predicted = np.array([0, 1, 0, 1, 1, 0])
    per_task = metrics_by(["reach", "reach", "reach", "push", "push", "push"], labels, predicted, np.ones(6, bool))
    assert list(per_task) == ["reach", "push"]
    assert per_task["reach"]["confusion"] == {"tn": 1, "fp": 0, "fn": 1, "tp": 1}
    assert per_task["reach"]["tpr"] == 0.5 and per_task["reach"]["tpr_se"] == pytest.approx(0.5 / np.sqrt(2))
    assert per_task["push"]["fpr"] == 0.5 and np.isnan(metrics_by(["x"], labels[:1], predicted[:1], np.ones(1, bool))["x"]["fpr"])


def test_every_source_draws_fresh_eval_states_of_its_own():
    config = JudgeEvalConfig(reality=RealityConfig(tasks=("reach-v3", "push-v3")), expert=3, noisy=2, noise_scales=(0.3, 1.0),
                             stopped=2, first_state=5)
    jobs = judge_test_jobs(config)
    assert len(jobs) == 2 * (3 + 2 + 2 * 2) and all(job.split == "eval" for job in jobs)
    by_source = {}
    for job in jobs:
        by_source.setdefault(job.key.split("/")[1], set()).add(job.seed)
    assert set(by_source) == {"expert", "stopped", "noisy-0.3", "noisy-1"}
    seeds = list(by_source.values())
    assert all(not a & b for i, a in enumerate(seeds) for b in seeds[i + 1:])  # no state shared across sources
    # Far from the states of the benchmark's evaluation, which start at the first 'eval' state.
    assert min(min(s) for s in seeds) >= JUDGE_TEST_SEEDS + 5 and EVAL_SEED_OFFSET > 0
    assert {job.noise_std for job in jobs if job.key.split("/")[1] == "noisy-0.3"} == {(0.3, 0.3)}
    later = judge_test_jobs(JudgeEvalConfig(reality=config.reality, expert=3, noisy=0, stopped=0, first_state=8))
    assert not {j.seed for j in later} & by_source["expert"]  # another first_state: another test set


def test_a_jump_to_goal_video_keeps_the_first_frame_then_only_the_end():
    videos = np.arange(2 * 6).reshape(2, 6, 1, 1, 1).astype(np.uint8).repeat(3, axis=-1)
    cut = jump_to_goal(videos, 2)
    assert cut.shape == videos.shape
    assert cut[0, :, 0, 0, 0].tolist() == [0, 0, 0, 0, 4, 5]


def test_judge_eval_gathers_every_source_and_reuses_its_cache(shipped, tmp_path):
    reality = RealityConfig(tasks=("reach-v3",), max_steps=12)
    config = JudgeEvalConfig(judge=JudgeConfig(path=str(shipped / "judge")), reality=reality,
                             dream=DreamConfig(checkpoint=str(shipped / "world_model.pt")), expert=2, noisy=1, noise_scales=(0.5,),
                             stopped=1, policy=str(shipped / "policy_sft"), policy_episodes_per_task=1, jump_cuts=1,
                             out=str(tmp_path / "eval"), videos_cache=str(tmp_path / "cache"), workers=1)
    summary = evaluate_judge(config)
    real = summary["sets"][REAL]
    assert set(real["per_source"]["reach-v3"]) == {"expert", "stopped", "noisy-0.5", "policy"}
    assert real["per_task"]["reach-v3"]["n"] == 5 and summary["sets"][DREAMED]["per_task"]["reach-v3"]["n"] == 5
    assert set(summary["sets"]) <= {REAL, DREAMED, JUMP}
    if JUMP in summary["sets"]:  # only where a real success exists to cut
        assert summary["sets"][JUMP]["per_task"]["reach-v3"]["positives"] == 0
    assert (tmp_path / "eval" / "examples.png").exists() and (tmp_path / "cache" / f"{REAL}.npz").exists()
    cached = LabelledVideos.load(tmp_path / "cache" / f"{REAL}.npz")
    again = evaluate_judge(config.__class__(**{**config.__dict__, "out": str(tmp_path / "again"), "expert": 50}))
    # Read from the cache: nothing gathered, so the same verdicts.
    assert again["sets"][REAL]["per_task"]["reach-v3"]["confusion"] == real["per_task"]["reach-v3"]["confusion"]
    assert cached.kinds.count("expert") == 2
    # Pooled with another gathered set (here the same one twice): every count doubles, per task.
    pooled = evaluate_judge(replace(config, out=str(tmp_path / "pooled"), pool_with=(str(tmp_path / "cache"),)))
    doubled = {key: 2 * value for key, value in real["per_task"]["reach-v3"]["confusion"].items()}
    assert pooled["sets"][REAL]["per_task"]["reach-v3"]["confusion"] == doubled
    with pytest.raises(FileNotFoundError, match="pool_with"):
        evaluate_judge(replace(config, pool_with=(str(tmp_path / "nothing"),)))


def test_judge_eval_runs_the_api_judge_end_to_end(chat_server, tmp_path):
    tasks = ("reach-v3", "push-v3")
    labels = np.array([True, False, True, False])
    names = ["reach-v3", "reach-v3", "push-v3", "push-v3"]
    videos = np.random.default_rng(0).integers(0, 256, (4, 7, 16, 16, 3), dtype=np.uint8)
    (tmp_path / "cache").mkdir()
    LabelledVideos(videos, [instruction_for(t) for t in names], labels, ["expert", "policy"] * 2).save(tmp_path / "cache" / f"{REAL}.npz")
    chat_server.script = [(200, "It reached the goal.\nFinal Score: 1", 0.0), (200, "It did not.\nFinal Score: 0", 0.0),
                          (200, "I cannot tell.", 0.0), (200, "It did not.\nFinal Score: 0", 0.0)]
    api = ApiJudgeConfig(base_url=chat_server.url, api_key="test-key", model="gpt-4o", retries=0, max_calls_per_minute=6000)
    config = JudgeEvalConfig(judge=JudgeConfig(backend="api", api=api), reality=RealityConfig(tasks=tasks),
                             videos_cache=str(tmp_path / "cache"), out=str(tmp_path / "eval"), batch_size=2)
    summary = evaluate_judge(config)
    assert summary["judge"] == "api" and len(chat_server.requests) == 4
    per_task = summary["sets"][REAL]["per_task"]
    assert per_task["reach-v3"]["tpr"] == 1.0 and per_task["reach-v3"]["fpr"] == 0.0
    assert per_task["push-v3"]["unknown"] == 1 and per_task["push-v3"]["fpr"] == 0.0 and np.isnan(per_task["push-v3"]["tpr"])
    report = format_results(summary)
    assert "| push-v3 | 2 | 1 | - | 0.00 +- 0.00 (0/1) | 1.00 | 1 |" in report


def test_judge_eval_runs_a_local_vlm_judge(tmp_path, save_tiny_vlm):
    from gymnast_reward.vlm_judge import VLMJudgeConfig

    save_tiny_vlm("paligemma", tmp_path / "vlm")
    names = ["reach-v3", "push-v3"]
    (tmp_path / "cache").mkdir()
    LabelledVideos(np.random.default_rng(0).integers(0, 256, (2, 7, 16, 16, 3), dtype=np.uint8), [instruction_for(t) for t in names],
                   np.array([True, False]), ["expert", "stopped"]).save(tmp_path / "cache" / f"{REAL}.npz")
    config = JudgeEvalConfig(judge=JudgeConfig(backend="vlm", vlm=VLMJudgeConfig(path=str(tmp_path / "vlm"), max_new_tokens=8)),
                             reality=RealityConfig(tasks=tuple(names)), videos_cache=str(tmp_path / "cache"), out=str(tmp_path / "eval"))
    summary = evaluate_judge(config)
    assert summary["judge"] == "vlm" and list(summary["sets"][REAL]["per_task"]) == names
    # Random weights rarely write a verdict: every video is counted, as a verdict or as unknown.
    assert all(m["n"] == 1 for m in summary["sets"][REAL]["per_task"].values())
    assert "| reach-v3 | 1 | 1 |" in format_results(summary)
