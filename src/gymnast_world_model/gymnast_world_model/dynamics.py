"""The interface of the dynamics trunks, behind one objective (diffusion.py).

`Dynamics.loss` trains on clips of latents; `Dynamics.start` / `Dynamics.next_latent` roll
out B dreams in one batch. Two trunks:

- `ConvUNetDynamics` (conv_unet.py, CPU default): a small U-Net over the last `context` frames
  and the noisy next frame, with FiLM conditioning on the action and noise levels; it denoises
  the residual over the last frame. Fixed context, so the cost per frame is flat by design.
- `SpatioTemporalDiT` (dit.py, scale path, WorldGym-style): every layer is a spatial block
  (attention within a frame) then a causal temporal block (attention across frames at the
  same patch), adaLN-Zero conditioned on the per-frame noise level plus a per-frame action
  embedding. Rollouts keep a KV cache of the temporal attention over a sliding window.

Both train with diffusion forcing (independent noise levels per frame; context frames are
lightly noised) and drop the actions of a whole clip with probability `action_dropout`,
so classifier-free guidance is available at sampling time.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn as nn

from gymnast_world_model.diffusion import add_noise


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of noise levels t in [0, 1], any leading shape."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t.float()[..., None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Dynamics(nn.Module, ABC):
    """A next-frame latent model trained by denoising (v or x0 target) and sampled with DDIM."""

    action_dim: int
    context_noise: float  # noise level context frames are re-noised to at rollout time

    @abstractmethod
    def loss(self, latents: torch.Tensor, actions: torch.Tensor, drop: torch.Tensor,
             padding: torch.Tensor | None = None) -> torch.Tensor:
        """latents [B, L, C, h, w], actions [B, L-1, A] (action t moves frame t to t+1), drop [B];
        padding [B]: leading frames of each clip that are copies of its episode's first frame."""

    @abstractmethod
    def start(self, first: torch.Tensor, window: int, generator: torch.Generator | None = None) -> Any:
        """Rollout state from the first latents [B, C, h, w]; `window` frames of context at most."""

    @abstractmethod
    def next_latent(self, state: Any, actions: torch.Tensor, steps: int, cfg_scale: float,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample the next latent [B, C, h, w] for actions [B, A]; advances `state`."""

    def _renoise(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        t = torch.full(x.shape[:1], self.context_noise, device=x.device)
        return add_noise(x, t, torch.randn(x.shape, generator=generator, device=x.device), self.prediction)[0]


def cfg_batch(actions: torch.Tensor, cfg_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions and drop mask for one batched forward of [conditional; unconditional]."""
    batch = actions.shape[0]
    keep = torch.zeros(batch, dtype=torch.bool, device=actions.device)
    if cfg_scale == 1.0:
        return actions, keep
    return torch.cat([actions, actions]), torch.cat([keep, ~keep])


def cfg_combine(v: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    if cfg_scale == 1.0:
        return v
    v_cond, v_uncond = v.chunk(2)
    return v_uncond + cfg_scale * (v_cond - v_uncond)
