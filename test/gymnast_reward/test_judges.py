import json

import numpy as np
import pytest
import torch

from gymnast_core.action_spec import ActionSpec
from gymnast_core.dataset import EpisodeDataset
from gymnast_core.episode import Episode
from gymnast_reward.judges import JudgeConfig, OracleJudge, make_judge
from gymnast_reward.learned_judge import LearnedJudge, LearnedJudgeConfig, frame_indices, save_learned_judge
from gymnast_pipelines.train_judge import LabelledVideos, TrainJudgeConfig, augment, train_judge
from gymnast_reward.vlm_judge import VLMJudge, VLMJudgeConfig


def test_frame_indices_cover_first_and_last():
    assert frame_indices(41, 4).tolist() == [0, 13, 27, 40]
    assert frame_indices(3, 4).tolist() == [0, 1, 1, 2]


def test_learned_judge_learns_a_visible_outcome_and_round_trips(tmp_path):
    """Success = the last frame is bright; a few steps of training must find that."""
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 100, (32, 6, 32, 32, 3), dtype=np.uint8)
    labels = rng.random(32) < 0.5
    videos[labels, -1] += 150
    instructions = ["press the button"] * 32
    judge = fit_judge(LearnedJudge(LearnedJudgeConfig(image_size=32, channels=(8, 16))), videos, labels, instructions)
    save_learned_judge(judge, tmp_path / "judge")
    reloaded = make_judge(JudgeConfig(backend="learned", path=str(tmp_path / "judge")))
    np.testing.assert_allclose(reloaded.probabilities(videos, instructions), judge.probabilities(videos, instructions), atol=1e-6)


def test_per_frame_judge_sees_a_success_that_does_not_last_to_the_end():
    """Success = one bright frame somewhere in the middle (a reach that touches the goal and drifts away)."""
    rng = np.random.default_rng(2)
    videos = rng.integers(0, 100, (48, 8, 32, 32, 3), dtype=np.uint8)
    labels = rng.random(48) < 0.5
    videos[np.flatnonzero(labels), rng.integers(1, 7, labels.sum())] += 150
    judge = LearnedJudge(LearnedJudgeConfig(image_size=32, frames=8, channels=(8, 16), per_frame=True))
    fit_judge(judge, videos, labels, ["reach the goal"] * 48)


def fit_judge(judge: LearnedJudge, videos: np.ndarray, labels: np.ndarray, instructions: list[str]) -> LearnedJudge:
    """60 full-batch steps must halve the loss and classify the training videos."""
    x, y = judge.inputs(videos), torch.from_numpy(labels.astype(np.float32))
    optimizer = torch.optim.Adam(judge.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(judge(x, instructions), y)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    judge.eval()
    verdict = judge.judge(videos, instructions)
    assert (verdict.success == labels).mean() >= 0.9 and verdict.known.all()
    return judge


def test_train_judge_reads_its_videos_cache_instead_of_gathering(tmp_path):
    rng = np.random.default_rng(1)
    cached = LabelledVideos(rng.integers(0, 255, (8, 6, 32, 32, 3), dtype=np.uint8), ["open the drawer"] * 8,
                            np.arange(8) % 2 == 0, ["real"] * 4 + ["policy"] * 4)
    cached.save(tmp_path / "videos.npz")
    loaded = LabelledVideos.load(tmp_path / "videos.npz")
    np.testing.assert_array_equal(loaded.videos, cached.videos)
    assert loaded.labels.dtype == bool and loaded.kinds == cached.kinds and loaded.instructions == cached.instructions
    # Extra real episodes are read from their own dataset on top of the cache.
    extra = EpisodeDataset.create(tmp_path / "extra", ActionSpec(("dx", "gripper"), (-1, -1), (1, 1), gripper_index=1,
                                                                   gripper_open=-1, gripper_closed=1))
    for i in range(3):
        extra.append(Episode(rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8), np.zeros((5, 2), np.float32),
                             "open the drawer", i == 0, {"source": "noisy"}), f"e{i}")
    # The dataset does not exist: only the cache can supply the videos.
    config = TrainJudgeConfig(dataset=str(tmp_path / "missing"), videos_cache=str(tmp_path / "videos.npz"),
                              extra_data=(str(tmp_path / "extra"),), out=str(tmp_path / "judge"),
                              model=LearnedJudgeConfig(image_size=32, channels=(8, 16)), steps=2, batch_size=4, jump_cuts=5)
    train_judge(config)
    meta = json.loads((tmp_path / "judge" / "judge.json").read_text())
    # Jump-to-goal failures come from the real successes (two of the cached real videos succeed).
    assert meta["trained_on"] == {"extra-real": 3, "jump-to-goal": 2, "policy": 4, "real": 4}
    assert meta["extra_data"] == [str(tmp_path / "extra")]
    assert meta["extra_real_episodes"] == 3  # the benchmark counts them as real interaction


def test_learned_judge_rejects_weights_that_do_not_match(tmp_path):
    save_learned_judge(LearnedJudge(LearnedJudgeConfig(channels=(8, 16))), tmp_path / "judge")
    path = tmp_path / "judge" / "judge.json"
    meta = json.loads(path.read_text())
    meta["config"]["channels"] = [8, 32]
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match judge.json"):
        make_judge(JudgeConfig(backend="learned", path=str(tmp_path / "judge")))


def test_augment_keeps_shape_and_range():
    x = torch.rand(3, 12, 16, 16) * 2 - 1
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1


def test_oracle_is_labelled_and_checks_batch_size():
    outcomes = np.array([True, False])
    verdict = OracleJudge(lambda: outcomes).judge(np.zeros((2, 3, 8, 8, 3), np.uint8), ["a", "b"])
    assert verdict.success.tolist() == [True, False]
    assert all(r.startswith("oracle:") for r in verdict.rationales)
    with pytest.raises(ValueError, match="2 outcomes for 3 videos"):
        OracleJudge(lambda: outcomes).judge(np.zeros((3, 3, 8, 8, 3), np.uint8), ["a"] * 3)


def test_vlm_judge_runs_a_tiny_local_checkpoint(tmp_path, save_tiny_vlm):
    save_tiny_vlm("paligemma", tmp_path / "vlm")
    judge = VLMJudge(VLMJudgeConfig(path=str(tmp_path / "vlm"), samples=3, max_new_tokens=8))
    videos = np.random.default_rng(0).integers(0, 256, (2, 7, 16, 16, 3), dtype=np.uint8)
    answers = judge.answers(videos[0], "open the drawer")
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    verdict = judge.judge(videos, ["open the drawer", "press the button"])
    # Random weights do not write "Final Score": the verdict must say unknown, not 0.
    assert verdict.scores.shape == (2,)
    for known, rationale in zip(verdict.known, verdict.rationales):
        assert known or rationale.startswith("unknown:")


def test_vlm_judge_missing_checkpoint_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        VLMJudge(VLMJudgeConfig(path=str(tmp_path / "none")))


def test_class_balance_gives_every_task_and_outcome_the_same_weight():
    from gymnast_pipelines.train_judge import class_balance

    instructions = ["sweep"] * 10 + ["door"] * 4
    labels = np.array([True] + [False] * 9 + [True, True, False, False])
    weights = class_balance(instructions, labels)
    totals = {(i, bool(y)): 0.0 for i, y in zip(instructions, labels)}
    for i, y, w in zip(instructions, labels, weights):
        totals[(i, bool(y))] += w
    assert np.allclose(list(totals.values()), 14 / 4) and weights.mean() == pytest.approx(1.0)
