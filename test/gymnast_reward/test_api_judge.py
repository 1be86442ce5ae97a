"""The `api` judge against a real OpenAI-compatible HTTP server on 127.0.0.1."""

import numpy as np
import pytest

from gymnast_reward.api_judge import ApiJudge, ApiJudgeConfig


@pytest.fixture
def server(chat_server):
    return chat_server


VIDEOS = np.random.default_rng(0).integers(0, 256, (2, 7, 16, 16, 3), dtype=np.uint8)


def make_judge(server, **overrides):
    config = ApiJudgeConfig(base_url=server.url, api_key="test-key", model="gpt-4o", timeout_s=0.5, retries=2,
                            backoff_s=0.01, max_calls_per_minute=6000, **overrides)
    return ApiJudge(config)


def test_normal_verdict(server):
    server.script = [(200, "The drawer is open at the end.\nFinal Score: 1", 0.0)]
    judge = make_judge(server)
    verdict = judge.judge(VIDEOS, ["open the drawer", "open the drawer"])
    assert verdict.success.tolist() == [True, True] and verdict.known.all()
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer test-key"
    content = request["body"]["messages"][0]["content"]
    images = [c for c in content if c["type"] == "image_url"]
    assert len(images) == 3  # frames 0, 3, 6 of 7
    assert images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "Final Score" in content[-1]["text"]
    assert judge.usage.calls == 2 and judge.usage.prompt_tokens == 200 and judge.usage.completion_tokens == 40
    assert len(judge.usage.latency_s) == 2


def test_unparseable_answer_is_unknown(server):
    server.script = [(200, "I think the robot did well!", 0.0)]
    verdict = make_judge(server).judge(VIDEOS[:1], ["open the drawer"])
    assert not verdict.known[0] and not verdict.success[0] and np.isnan(verdict.scores[0])
    assert verdict.rationales[0].startswith("unknown: no parseable 'Final Score'")


def test_timeout_is_unknown_after_retries(server):
    server.script = [(200, "Final Score: 1", 2.0)]
    judge = make_judge(server)
    verdict = judge.judge(VIDEOS[:1], ["open the drawer"])
    assert not verdict.known[0] and "unknown" in verdict.rationales[0]
    assert judge.usage.calls == 3 and judge.usage.retries == 2 and judge.usage.failures == 1


def test_server_error_is_unknown_and_retried(server):
    server.script = [(500, "oops", 0.0)]
    judge = make_judge(server)
    verdict = judge.judge(VIDEOS[:1], ["open the drawer"])
    assert not verdict.known[0] and "HTTP 500" in verdict.rationales[0]
    assert judge.usage.calls == 3


def test_transient_server_error_then_answer(server):
    server.script = [(503, "busy", 0.0), (200, "Final Score: 0", 0.0)]
    judge = make_judge(server)
    verdict = judge.judge(VIDEOS[:1], ["open the drawer"])
    assert verdict.known[0] and not verdict.success[0] and judge.usage.retries == 1


def test_majority_vote_over_samples(server):
    server.script = [(200, "Final Score: 1", 0.0), (200, "Final Score: 0", 0.0), (200, "Final Score: 1", 0.0)]
    verdict = make_judge(server, samples=3).judge(VIDEOS[:1], ["open the drawer"])
    assert verdict.success[0]


def test_endpoint_down_is_unknown():
    judge = ApiJudge(ApiJudgeConfig(base_url="http://127.0.0.1:9/v1", timeout_s=0.5, retries=1, backoff_s=0.01))
    verdict = judge.judge(VIDEOS[:1], ["open the drawer"])
    assert not verdict.known[0] and "127.0.0.1:9" in verdict.rationales[0]


HTML_PAGE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 46\r\n\r\n"
             b"<html><body>Sign in to the proxy</body></html>")


@pytest.mark.parametrize("raw, cause", [
    (HTML_PAGE, "not JSON"),
    (b"GARBAGE 12 what\r\n\r\n", "BadStatusLine"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n[1, 2, 3]   ", "malformed"),
])
def test_malformed_answers_are_unknown_not_a_crash(server, raw, cause):
    server.script = [(None, raw, 0.0)]
    judge = make_judge(server)
    verdict = judge.judge(VIDEOS[:1], ["open the drawer"])
    assert not verdict.known[0] and not verdict.success[0] and np.isnan(verdict.scores[0])
    assert cause in verdict.rationales[0] and judge.usage.failures == 1
