"""One `Judge` interface, four backends, chosen by name.

`oracle` reads the ground truth of the environment that produced the videos. It exists
for benchmarks and judge calibration only; its verdicts always say "oracle".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from gymnast_core.names import JUDGE
from gymnast_core.protocols import Judge, Verdict
from gymnast_reward.api_judge import ApiJudge, ApiJudgeConfig
from gymnast_reward.rubric import check_batch
from gymnast_reward.vlm_judge import VLMJudge, VLMJudgeConfig

BACKENDS = ("learned", "vlm", "api", "oracle")


class OracleJudge:
    """Ground truth from an evaluation environment: `success_source()` gives bool [B] for the last
    rollouts; `score_source()`, if given, a dense score in [0, 1] (else the score is the success)."""

    name = "oracle"

    def __init__(self, success_source: Callable[[], np.ndarray], score_source: Callable[[], np.ndarray] | None = None):
        self.success_source, self.score_source = success_source, score_source

    def judge(self, videos: np.ndarray, instructions: Sequence[str]) -> Verdict:
        check_batch(videos, instructions)
        success = np.asarray(self.success_source(), dtype=bool)
        if success.shape != (len(videos),):
            raise ValueError(f"oracle: the environment reports {success.size} outcomes for {len(videos)} videos")
        scores = success if self.score_source is None else np.asarray(self.score_source())
        return Verdict(scores=scores.astype(np.float32), success=success, known=np.ones(len(success), bool),
                       rationales=["oracle: ground truth from the evaluation environment"] * len(success))


@dataclass(frozen=True)
class JudgeConfig:
    # 'learned' (CPU default), 'vlm', 'api' or 'oracle' (benchmarks and calibration only).
    backend: str = "learned"
    # learned: the folder `gymnast train-judge` wrote.
    path: str = JUDGE
    vlm: VLMJudgeConfig = field(default_factory=VLMJudgeConfig)
    api: ApiJudgeConfig = field(default_factory=ApiJudgeConfig)


def make_judge(config: JudgeConfig, success_source: Callable[[], np.ndarray] | None = None) -> Judge:
    if config.backend == "learned":
        from gymnast_reward.learned_judge import load_learned_judge

        return load_learned_judge(config.path)
    if config.backend == "vlm":
        return VLMJudge(config.vlm)
    if config.backend == "api":
        return ApiJudge(config.api)
    if config.backend == "oracle":
        if success_source is None:
            raise ValueError("the oracle judge needs an evaluation environment's ground truth; "
                             "it is only available for benchmarks and calibration in the reality")
        return OracleJudge(success_source)
    raise ValueError(f"unknown judge backend {config.backend!r}; choose one of {', '.join(BACKENDS)}")
