"""The shared objective and sampler: v-prediction on a cosine schedule and DDIM sampling.

Noise level t in [0, 1]: x_t = alpha(t) x_0 + sigma(t) eps with alpha = cos(pi t / 2),
sigma = sin(pi t / 2). The model predicts v = alpha eps - sigma x_0. Every frame of a clip
has its own t (diffusion forcing), so clean context (t ~ 0) and pure noise (t = 1) share
one network.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def _expand(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.reshape(*x.shape, *([1] * (like.ndim - x.ndim)))


def add_noise(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (x_t, v target). `t` has the leading shape of x0 ([B] or [B, T])."""
    alpha, sigma = (_expand(a, x0) for a in alpha_sigma(t))
    return alpha * x0 + sigma * noise, alpha * noise - sigma * x0


def ddim_sample(velocity: VelocityFn, noise: torch.Tensor, steps: int, t_end: float = 0.0) -> torch.Tensor:
    """Deterministic DDIM from t = 1 to t_end in `steps` steps. velocity(x_t, t[B]) -> v."""
    if steps < 1:
        raise ValueError(f"sampling steps must be >= 1, got {steps}")
    x = noise
    times = torch.linspace(1.0, t_end, steps + 1)
    batch = noise.shape[0]
    for t_now, t_next in zip(times[:-1], times[1:]):
        v = velocity(x, t_now.expand(batch))
        alpha, sigma = alpha_sigma(t_now)
        x0 = alpha * x - sigma * v
        eps = sigma * x + alpha * v
        alpha_next, sigma_next = alpha_sigma(t_next)
        x = alpha_next * x0 + sigma_next * eps
    return x
