"""`api` judge: the rubric sent to any OpenAI-compatible chat-completions endpoint.

Frames go as base64 JPEG data URLs. Model, base URL and key come from the config or from
GYMNAST_JUDGE_MODEL / OPENAI_BASE_URL / OPENAI_API_KEY. Timeouts and 5xx/429 answers are
retried with exponential backoff; calls are rate limited. Anything that still fails, or an
answer without a parseable "Final Score", is an explicit unknown verdict, never a 0.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from gymnast_core.protocols import Verdict
from gymnast_reward.rubric import BINARY_SCORES, build_prompt, check_batch, subsample_frames, verdict_from_scores, vote_on_answers


@dataclass(frozen=True)
class ApiJudgeConfig:
    # Empty = from the environment (GYMNAST_JUDGE_MODEL, OPENAI_BASE_URL, OPENAI_API_KEY).
    model: str = ""
    base_url: str = ""
    api_key: str = ""
    frame_stride: int = 3
    # Samples per video; the verdict is their majority vote.
    samples: int = 1
    temperature: float = 0.0
    max_tokens: int = 256
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 1.0
    max_calls_per_minute: float = 60.0
    jpeg_quality: int = 90


@dataclass
class ApiUsage:
    """Counters for cost and latency; the trainer logs them."""

    calls: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: list[float] = field(default_factory=list)


class JudgeEndpointError(RuntimeError):
    """The endpoint did not give a usable answer after all retries."""


def jpeg_data_url(frame: np.ndarray, quality: int) -> str:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class ApiJudge:
    name = "api"

    def __init__(self, config: ApiJudgeConfig | None = None):
        self.config = config or ApiJudgeConfig()
        self.model = self.config.model or os.environ.get("GYMNAST_JUDGE_MODEL", "gpt-4o")
        self.base_url = (self.config.base_url or os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")).rstrip("/")
        self.api_key = self.config.api_key or os.environ.get("OPENAI_API_KEY", "")
        self.usage = ApiUsage()
        self._last_call = -float("inf")

    def messages(self, video: np.ndarray, instruction: str, criterion: str = "") -> list[dict]:
        frames = subsample_frames(video, self.config.frame_stride)
        content = [{"type": "image_url", "image_url": {"url": jpeg_data_url(f, self.config.jpeg_quality)}} for f in frames]
        content.append({"type": "text", "text": build_prompt(instruction, len(frames), criterion)})
        return [{"role": "user", "content": content}]

    def _wait_for_rate_limit(self) -> None:
        interval = 60.0 / self.config.max_calls_per_minute
        wait = self._last_call + interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_call = time.monotonic()

    def _post(self, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
            return json.loads(response.read())

    def complete(self, messages: list[dict]) -> str:
        """One chat completion's text; retries transient failures, raises JudgeEndpointError."""
        body = {"model": self.model, "messages": messages, "temperature": self.config.temperature,
                "max_tokens": self.config.max_tokens}
        last_error = ""
        for attempt in range(self.config.retries + 1):
            if attempt:
                self.usage.retries += 1
                time.sleep(self.config.backoff_s * 2 ** (attempt - 1))
            self._wait_for_rate_limit()
            self.usage.calls += 1
            started = time.monotonic()
            try:
                answer = self._post(body)
            except urllib.error.HTTPError as error:
                last_error = f"HTTP {error.code} from {self.base_url}"
                if error.code == 429 or error.code >= 500:
                    continue
                break  # other 4xx (bad key, bad model) will not get better by retrying
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException) as error:
                # HTTPException: a garbled status line or a connection dropped mid-answer.
                reason = getattr(error, "reason", error)
                last_error = f"{type(reason).__name__} talking to {self.base_url}: {reason}"
                continue
            except ValueError as error:  # a 200 whose body is not JSON (an HTML error page, a proxy's login page)
                last_error = f"answer from {self.base_url} is not JSON ({error})"
                break
            finally:
                self.usage.latency_s.append(time.monotonic() - started)
            try:
                text = answer["choices"][0]["message"]["content"]
                usage = answer.get("usage") or {}
                self.usage.prompt_tokens += int(usage.get("prompt_tokens") or 0)
                self.usage.completion_tokens += int(usage.get("completion_tokens") or 0)
            except (KeyError, IndexError, TypeError, AttributeError, ValueError):
                last_error = f"malformed chat-completions answer from {self.base_url}: {str(answer)[:200]}"
                break
            return text if isinstance(text, str) else ""
        self.usage.failures += 1
        raise JudgeEndpointError(last_error)

    def judge(self, videos: np.ndarray, instructions: Sequence[str], criteria: Sequence[str] | None = None) -> Verdict:
        check_batch(videos, instructions)
        scores, rationales = [], []
        for i, (video, instruction) in enumerate(zip(videos, instructions)):
            messages = self.messages(video, instruction, criteria[i] if criteria else "")
            texts = []
            for _ in range(self.config.samples):
                try:
                    texts.append(self.complete(messages))
                except JudgeEndpointError as error:
                    texts.append(f"unknown: {error}")
            vote, rationale = vote_on_answers(texts, BINARY_SCORES)
            scores.append(vote)
            rationales.append(rationale)
        return verdict_from_scores(scores, rationales)
