"""`TokenPolicy`: the Policy contract for VLAs that emit action tokens in parallel.

A backbone supplies `logits(frames, instructions) -> [B, K * A, bins]`: one forward pass
scores every token of a chunk (parallel decoding, as OpenVLA-OFT). The log-probability of a
chunk is then a sum of per-token log-softmax terms, which is what GRPO needs.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from gymnast_core.action_spec import ActionSpec
from gymnast_core.protocols import ActionChunk
from gymnast_policy.tokenizer import ActionTokenizer


def gather_tokens(log_probs: torch.Tensor, tokens) -> torch.Tensor:
    """The entries [B, T] of `log_probs` [B, T, bins] at the token values [B, T]."""
    return log_probs.gather(-1, torch.as_tensor(tokens, device=log_probs.device)[..., None]).squeeze(-1)


class TokenPolicy(nn.Module):
    image_size: int

    def __init__(self, action_spec: ActionSpec, chunk_size: int = 5, bins: int = 256):
        super().__init__()
        self.action_spec, self.chunk_size = action_spec, chunk_size
        self.tokenizer = ActionTokenizer(action_spec, bins, chunk_size)

    @abstractmethod
    def logits(self, frames: torch.Tensor, instructions: Sequence[str]) -> torch.Tensor:
        """frames uint8 [B, H, W, 3] -> logits [B, K * A, bins]."""

    @abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """What `load_policy` needs to rebuild this backbone."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def check_inputs(self, frames: np.ndarray | torch.Tensor, instructions: Sequence[str]) -> torch.Tensor:
        frames = torch.as_tensor(frames)
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames: expected uint8 [B, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        if tuple(frames.shape[1:3]) != (self.image_size, self.image_size):
            raise ValueError(
                f"frames: this policy takes {self.image_size}x{self.image_size} images, got {tuple(frames.shape[1:3])}; "
                "resize first (gymnast_core.video.resize_frames)")
        if isinstance(instructions, str) or not all(isinstance(i, str) for i in instructions):
            raise TypeError(f"instructions: expected a list of {len(frames)} strings, got {type(instructions).__name__}")
        if len(instructions) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(instructions)} instructions")
        return frames.to(self.device)

    def log_probs(self, frames, instructions, temperature: float = 1.0) -> torch.Tensor:
        """Log-probabilities [B, K * A, bins] of every token value at `temperature` > 0 (differentiable)."""
        logits = self.logits(self.check_inputs(frames, instructions), instructions).float()
        return torch.log_softmax(logits / temperature, dim=-1)

    def token_logprobs(self, frames, instructions, tokens, temperature: float = 1.0) -> torch.Tensor:
        """Per-token log-probabilities [B, K * A] of given tokens under the policy at `temperature` (differentiable)."""
        return gather_tokens(self.log_probs(frames, instructions, temperature), tokens)

    def logprob(self, frames, instructions, tokens, temperature: float = 1.0) -> torch.Tensor:
        """Log-probability [B] of each chunk of tokens: the sum over its tokens."""
        return self.token_logprobs(frames, instructions, tokens, temperature).sum(-1)

    @torch.no_grad()
    def act(self, frames, instructions, temperature: float = 1.0) -> ActionChunk:
        """Sample a chunk at `temperature` (0 = greedy); logprobs are under that same distribution."""
        log_probs = self.log_probs(frames, instructions, temperature if temperature > 0 else 1.0)
        tokens = torch.distributions.Categorical(logits=log_probs).sample() if temperature > 0 else log_probs.argmax(-1)
        logprobs = gather_tokens(log_probs, tokens).sum(-1)
        tokens_np = tokens.cpu().numpy()
        return ActionChunk(self.tokenizer.decode(tokens_np), tokens_np, logprobs.cpu().numpy())
