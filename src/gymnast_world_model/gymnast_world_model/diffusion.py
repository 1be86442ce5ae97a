"""The shared objective and sampler: v- or x0-prediction on a cosine schedule, DDIM sampling.

Noise level t in [0, 1]: x_t = alpha(t) x_0 + sigma(t) eps with alpha = cos(pi t / 2),
sigma = sin(pi t / 2); the network predicts v = alpha eps - sigma x_0 or x_0 itself. Every
frame of a clip has its own t (diffusion forcing), so clean context (t ~ 0) and pure noise
(t = 1) share one network.

Why two targets: the conv trunk denoises the frame-to-frame residual, which is exactly zero
over the static background. v asks the network to output (alpha / sigma) times its input
there; x0 makes the background trivially 0 (docs/history.md, world model).
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


PREDICTIONS = ("v", "x0")


def add_noise(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, prediction: str = "v") -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (x_t, training target). `t` has the leading shape of x0 ([B] or [B, T])."""
    alpha, sigma = (_expand(a, x0) for a in alpha_sigma(t))
    return alpha * x0 + sigma * noise, alpha * noise - sigma * x0 if prediction == "v" else x0


def to_x0_eps(output: torch.Tensor, x: torch.Tensor, t: torch.Tensor, prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's output at (x_t, t) as estimates of x_0 and eps (t > 0)."""
    alpha, sigma = (_expand(a, x) for a in alpha_sigma(t))
    if prediction == "v":
        return alpha * x - sigma * output, sigma * x + alpha * output
    return output, (x - alpha * output) / sigma


def ddim_sample(model: VelocityFn, noise: torch.Tensor, steps: int, prediction: str = "v", t_end: float = 0.0) -> torch.Tensor:
    """Deterministic DDIM from t = 1 to t_end in `steps` steps. model(x_t, t[B]) -> v or x_0."""
    if steps < 1:
        raise ValueError(f"sampling steps must be >= 1, got {steps}")
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    x = noise
    times = torch.linspace(1.0, t_end, steps + 1, device=noise.device)
    batch = noise.shape[0]
    for t_now, t_next in zip(times[:-1], times[1:]):
        x0, eps = to_x0_eps(model(x, t_now.expand(batch)), x, t_now.expand(batch), prediction)
        alpha_next, sigma_next = alpha_sigma(t_next)
        x = alpha_next * x0 + sigma_next * eps
    return x
