import numpy as np
import pytest

from gymnast_reward.judges import JudgeConfig, make_judge
from gymnast_reward.rubric import (PARTIAL_SCORES, build_prompt, check_batch, contact_sheet, majority_vote,
                                   parse_final_score, subsample_frames, verdict_from_scores)


def test_prompt_warns_about_generated_video_and_asks_for_final_score():
    prompt = build_prompt("Open the drawer.", 14)
    assert '"Open the drawer."' in prompt and "14 video frames" in prompt
    assert "generated" in prompt and "artifacts" in prompt
    assert "2-3 sentences" in prompt and 'Final Score: X' in prompt and "0 or 1" in prompt
    partial = build_prompt("push the puck", 5, criterion="the puck moved half-way", partial_credit=True)
    assert "0, 0.5 or 1" in partial and "Success criterion: the puck moved half-way" in partial
    with pytest.raises(ValueError, match="non-empty instruction"):
        build_prompt("  ", 3)


@pytest.mark.parametrize("text, expected", [
    ("The gripper closes on the handle.\nFinal Score: 1", 1.0),
    ("final score: 0", 0.0),
    ("**Final Score:** 1", 1.0),
    ("Final Score = 0.0", 0.0),
    ("Final Score: 1\nOn reflection... Final Score: 0", 0.0),  # the last one wins
    ("Final Score: 2", None),  # not an allowed score
    ("Final Score: 0.5", None),  # partial credit not enabled
    ("the task looks done", None),
    ("", None),
])
def test_final_score_parser(text, expected):
    assert parse_final_score(text) == expected


def test_final_score_parser_partial_credit():
    assert parse_final_score("half done. Final Score: 0.5", PARTIAL_SCORES) == 0.5


def test_final_score_parser_survives_malformed_text():
    rng = np.random.default_rng(0)
    alphabet = list("Final Score:01.5 \n*=-abcxyzFINALscore") + ["\x00", "é", "🙂"]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 60))))
        result = parse_final_score(text)
        assert result is None or result in (0.0, 1.0)
    assert parse_final_score(None) is None  # type: ignore[arg-type]


def test_majority_vote_with_ties_and_unknowns():
    assert majority_vote([1.0, 1.0, 0.0]) == 1.0
    assert majority_vote([1.0, 0.0]) == 0.0  # a tie never hands out success
    assert majority_vote([1.0, None, None]) == 1.0  # unparsed samples do not vote
    assert majority_vote([0.5, 1.0, 0.5, 1.0]) == 0.5
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_frame_subsampling_keeps_the_last_frame():
    video = np.arange(10)[:, None, None, None] * np.ones((10, 2, 2, 3), np.uint8)
    assert subsample_frames(video, 3)[:, 0, 0, 0].tolist() == [0, 3, 6, 9]
    assert subsample_frames(video, 4)[:, 0, 0, 0].tolist() == [0, 4, 8, 9]
    assert len(subsample_frames(video, 1)) == 10
    with pytest.raises(ValueError, match="stride"):
        subsample_frames(video, 0)
    with pytest.raises(ValueError, match="non-empty video"):
        subsample_frames(video[:0], 3)


def test_contact_sheet_tiles_in_reading_order():
    frames = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(5)])
    sheet = contact_sheet(frames)
    assert sheet.shape == (8, 12, 3)
    assert sheet[0, 0, 0] == 0 and sheet[0, 4, 0] == 1 and sheet[0, 8, 0] == 2 and sheet[4, 0, 0] == 3
    assert sheet[4, 8, 0] == 0  # padding


def test_bad_batches_are_clear_errors():
    videos = np.zeros((2, 5, 8, 8, 3), np.uint8)
    check_batch(videos, ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        check_batch(videos[:, :0], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        check_batch(videos[:0], [])
    with pytest.raises(ValueError, match="batch size mismatch: 2 videos but 1 instructions"):
        check_batch(videos, ["a"])
    with pytest.raises(ValueError, match="uint8"):
        check_batch(videos.astype(np.float32), ["a", "b"])
    with pytest.raises(ValueError, match=r"\[B, T, H, W, 3\]"):
        check_batch(videos[0], ["a"])


def test_unknown_is_never_a_silent_zero():
    verdict = verdict_from_scores([1.0, None, 0.0], ["ok", "unknown: timeout", "no"])
    assert verdict.success.tolist() == [True, False, False]
    assert verdict.known.tolist() == [True, False, True]
    assert np.isnan(verdict.scores[1])


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown judge backend 'gpt'; choose one of learned, vlm, api, oracle"):
        make_judge(JudgeConfig(backend="gpt"))
    with pytest.raises(ValueError, match="oracle judge needs an evaluation environment"):
        make_judge(JudgeConfig(backend="oracle"))
    with pytest.raises(FileNotFoundError, match="train one with `gymnast train-judge`"):
        make_judge(JudgeConfig(backend="learned", path="/nonexistent/judge"))
