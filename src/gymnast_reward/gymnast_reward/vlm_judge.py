"""`vlm` judge: a local Hugging Face vision-language model (Qwen2.5-VL, SmolVLM, PaliGemma...).

Every `frame_stride`-th frame of the video is tiled into one contact-sheet image, so any
single-image VLM can read the whole clip; the rubric asks for reasoning and a final
"Final Score: X" line. `samples` answers are drawn and majority-voted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from gymnast_core.protocols import Verdict
from gymnast_reward.rubric import (BINARY_SCORES, PARTIAL_SCORES, build_prompt, check_batch, contact_sheet,
                                   subsample_frames, verdict_from_scores, vote_on_answers)


@dataclass(frozen=True)
class VLMJudgeConfig:
    path: str = "checkpoints/judge-vlm"
    frame_stride: int = 3
    samples: int = 5
    temperature: float = 0.7
    max_new_tokens: int = 160
    partial_credit: bool = False
    torch_dtype: str = "float32"
    seed: int = 0


class VLMJudge:
    name = "vlm"

    def __init__(self, config: VLMJudgeConfig | None = None):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.config = config = config or VLMJudgeConfig()
        if not (Path(config.path) / "config.json").exists():
            raise FileNotFoundError(f"{config.path}: no Hugging Face VLM checkpoint here (config.json missing)")
        self.model = AutoModelForImageTextToText.from_pretrained(config.path, dtype=getattr(torch, config.torch_dtype)).eval()
        self.processor = AutoProcessor.from_pretrained(config.path)
        self.processor.tokenizer.padding_side = "left"  # generation continues every row at the same index
        self.allowed = PARTIAL_SCORES if config.partial_credit else BINARY_SCORES
        self.generator = torch.Generator().manual_seed(config.seed)

    def _inputs(self, sheet: np.ndarray, prompt: str) -> dict:
        if getattr(self.processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        else:  # PaliGemma-style processors: image token(s) then the prompt
            text = getattr(self.processor, "image_token", "<image>") + prompt
        return self.processor(text=[text], images=[sheet], return_tensors="pt")

    @torch.no_grad()
    def answers(self, video: np.ndarray, instruction: str, criterion: str = "") -> list[str]:
        frames = subsample_frames(video, self.config.frame_stride)
        prompt = build_prompt(instruction, len(frames), criterion, self.config.partial_credit, grid=True)
        inputs = {k: v.to(self.model.device) for k, v in self._inputs(contact_sheet(frames), prompt).items()}
        prompt_length = inputs["input_ids"].shape[1]
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator)))
        output = self.model.generate(**inputs, do_sample=self.config.temperature > 0, temperature=self.config.temperature or None,
                                     num_return_sequences=self.config.samples, max_new_tokens=self.config.max_new_tokens)
        return self.processor.tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)

    def judge(self, videos: np.ndarray, instructions: Sequence[str], criteria: Sequence[str] | None = None) -> Verdict:
        check_batch(videos, instructions)
        scores, rationales = [], []
        for i, (video, instruction) in enumerate(zip(videos, instructions)):
            vote, rationale = vote_on_answers(self.answers(video, instruction, criteria[i] if criteria else ""), self.allowed)
            scores.append(vote)
            rationales.append(rationale)
        return verdict_from_scores(scores, rationales)
