"""Adapter for Hugging Face vision-language backbones (`AutoModelForImageTextToText`):
PaliGemma, Qwen2.5-VL, SmolVLM/Idefics3 or OpenVLA-style checkpoints, loaded from a local folder.

As OpenVLA does, the vocabulary's last 256 ids are the action bins. Parallel decoding: the
prompt is followed by K*A - 1 placeholder tokens, and the logits at the last K*A positions,
restricted to the action ids, score every token of the chunk in one forward pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from gymnast_core.action_spec import ActionSpec
from gymnast_policy.base import TokenPolicy

PROMPT = "In: What action should the robot take to {task}?\nOut:"


class HFVLAPolicy(TokenPolicy):
    def __init__(self, path: str | Path, action_spec: ActionSpec, chunk_size: int = 5, image_size: int = 224,
                 bins: int = 256, torch_dtype: str = "float32"):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        super().__init__(action_spec, chunk_size, bins)
        self.path, self.image_size, self.torch_dtype = str(path), image_size, torch_dtype
        if not (Path(path) / "config.json").exists():
            raise FileNotFoundError(f"{path}: no Hugging Face checkpoint here (config.json missing)")
        self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=getattr(torch, torch_dtype))
        self.processor = AutoProcessor.from_pretrained(path)
        self.processor.tokenizer.padding_side = "left"  # placeholders end every row at the same index
        vocab = self.model.get_output_embeddings().weight.shape[0]
        if vocab < bins:
            raise ValueError(f"{path}: vocabulary of {vocab} ids is smaller than the {bins} action bins")
        self.action_token_ids = torch.arange(vocab - bins, vocab)
        self.image_token = getattr(self.processor, "image_token", "<image>")

    def logits(self, frames: torch.Tensor, instructions: Sequence[str]) -> torch.Tensor:
        prompts = [self.image_token + PROMPT.format(task=i.lower().rstrip(".")) for i in instructions]
        batch = self.processor(text=prompts, images=[f.cpu().numpy() for f in frames], return_tensors="pt", padding=True)
        batch = {k: v.to(self.device) for k, v in batch.items() if k != "labels"}
        extra = self.tokenizer.tokens_per_chunk - 1
        placeholder = torch.full((len(frames), extra), int(self.action_token_ids[0]), device=self.device)
        batch["input_ids"] = torch.cat([batch["input_ids"], placeholder], dim=1)
        batch["attention_mask"] = torch.cat([batch["attention_mask"], torch.ones_like(placeholder)], dim=1)
        if "token_type_ids" in batch:  # PaliGemma: 1 marks the suffix (causal) part
            batch["token_type_ids"] = torch.cat([batch["token_type_ids"], torch.ones_like(placeholder)], dim=1)
        if "mm_token_type_ids" in batch:
            batch["mm_token_type_ids"] = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(placeholder)], dim=1)
        logits = self.model(**batch).logits[:, -self.tokenizer.tokens_per_chunk:]
        return logits[..., self.action_token_ids.to(logits.device)]

    def config_dict(self) -> dict[str, Any]:
        return {"backbone": "hf", "path": self.path, "chunk_size": self.chunk_size, "image_size": self.image_size,
                "bins": self.tokenizer.bins, "torch_dtype": self.torch_dtype}
