"""The shared objective and sampler: v-, x0- or flow-prediction, DDIM / Euler sampling.

Noise level t in [0, 1]: x_t = alpha(t) x_0 + sigma(t) eps. "v" and "x0" use the cosine
schedule (alpha = cos(pi t / 2), sigma = sin(pi t / 2)); the network predicts
v = alpha eps - sigma x_0 or x_0 itself. "flow" is rectified flow: alpha = 1 - t, sigma = t,
the network predicts the velocity eps - x_0, and the DDIM update on that schedule is exactly
the Euler step of the flow ODE. Every frame of a clip has its own t (diffusion forcing), so
clean context (t ~ 0) and pure noise (t = 1) share one network.

Why several targets: the conv trunk denoises the frame-to-frame residual, which is exactly
zero over the static background. Cosine v-prediction asks the network to output
(alpha / sigma) times its input there (x 6 at t = 0.1); measured on the default data, it
never learned that and left noise in every dreamed frame (docs/world_model/report.md).
Predicting x_0 makes the background trivially 0 but weighs every noise level alike, so the
low-noise levels that place fine detail get little of the loss; the flow velocity weighs
them by 1 / t^2 relative to x_0, but its target over the background is the noise itself, and
on the conv trunk it measured far worse than x0 (docs/world_model/report.md).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def alpha_sigma(t: torch.Tensor, prediction: str = "v") -> tuple[torch.Tensor, torch.Tensor]:
    if prediction == "flow":
        return 1.0 - t, t
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def _expand(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.reshape(*x.shape, *([1] * (like.ndim - x.ndim)))


PREDICTIONS = ("v", "x0", "flow")


def add_noise(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, prediction: str = "v") -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (x_t, training target). `t` has the leading shape of x0 ([B] or [B, T])."""
    alpha, sigma = (_expand(a, x0) for a in alpha_sigma(t, prediction))
    targets = {"v": lambda: alpha * noise - sigma * x0, "x0": lambda: x0, "flow": lambda: noise - x0}
    return alpha * x0 + sigma * noise, targets[prediction]()


def to_x0_eps(output: torch.Tensor, x: torch.Tensor, t: torch.Tensor, prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's output at (x_t, t) as estimates of x_0 and eps (t > 0)."""
    alpha, sigma = (_expand(a, x) for a in alpha_sigma(t, prediction))
    if prediction == "v":
        return alpha * x - sigma * output, sigma * x + alpha * output
    if prediction == "flow":
        return x - sigma * output, x + alpha * output
    return output, (x - alpha * output) / sigma


def ddim_sample(model: VelocityFn, noise: torch.Tensor, steps: int, prediction: str = "v", t_end: float = 0.0) -> torch.Tensor:
    """Deterministic DDIM from t = 1 to t_end in `steps` steps. model(x_t, t[B]) -> v, x_0 or flow velocity."""
    if steps < 1:
        raise ValueError(f"sampling steps must be >= 1, got {steps}")
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    x = noise
    times = torch.linspace(1.0, t_end, steps + 1, device=noise.device)
    batch = noise.shape[0]
    for t_now, t_next in zip(times[:-1], times[1:]):
        x0, eps = to_x0_eps(model(x, t_now.expand(batch)), x, t_now.expand(batch), prediction)
        alpha_next, sigma_next = alpha_sigma(t_next, prediction)
        x = alpha_next * x0 + sigma_next * eps
    return x
