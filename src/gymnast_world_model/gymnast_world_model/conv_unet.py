"""The CPU default trunk: a conv U-Net over the last frames that denoises the next frame's residual.

FiLM- and input-plane-conditioned on the last actions and the noise levels, with optional
self-forcing (the last context frame dreamed by the model itself). See dynamics.py for the
interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gymnast_world_model.diffusion import add_noise, ddim_sample
from gymnast_world_model.dynamics import Dynamics, cfg_batch, cfg_combine, timestep_embedding


class _FiLMResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, cout)
        self.film = nn.Linear(cond_dim, 2 * cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


@dataclass
class _ConvState:
    context: torch.Tensor  # [B, n, C, h, w], clean latents, oldest first
    history: torch.Tensor  # [B, action_history, A], the actions into the last frames (zeros before the start)


class ConvUNetDynamics(Dynamics):
    def __init__(self, latent_channels: int, action_dim: int, context: int = 3,
                 channels: tuple[int, ...] = (32, 64, 128), cond_dim: int = 128,
                 context_noise: float = 0.05, action_dropout: float = 0.1, residual_scale: float = 8.0,
                 prediction: str = "x0", self_forcing: float = 0.0, self_forcing_steps: int = 4,
                 action_history: int = 0):
        super().__init__()
        if not 0 <= action_history < context:
            raise ValueError(f"action_history must be in [0, context - 1] = [0, {context - 1}], got {action_history}")
        # The arm follows an action with a lag (a mocap weld in Meta-World, a position controller on a
        # real arm), so the next motion depends on the actions before the last one too; in a long
        # rollout they are exact where the dreamed frames' apparent velocity is not.
        self.action_history = action_history
        self.latent_channels, self.action_dim, self.context = latent_channels, action_dim, context
        self.prediction = prediction
        self.self_forcing, self.self_forcing_steps = self_forcing, self_forcing_steps
        # The frame the model dreams before the target (clips are this much longer).
        self.forced_frames = 1 if self_forcing > 0 else 0
        # Frame-to-frame residuals are ~8x smaller than unit noise; scaled to unit variance,
        # the high-noise levels (where the motion is decided) carry weight in the loss.
        self.residual_scale = residual_scale
        self.context_noise, self.action_dropout = context_noise, action_dropout
        self.cond_dim = cond_dim
        # The action features: the last 1 + action_history actions.
        features = (1 + action_history) * action_dim
        self.action_mlp = nn.Sequential(nn.Linear(features, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.null_action = nn.Parameter(torch.zeros(cond_dim))
        # Separate embeddings of the target's and the context's noise levels, concatenated.
        self.time_mlp = nn.Sequential(nn.Linear(2 * cond_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        # The action also enters as constant input planes, so the first convolution can already
        # place the motion; FiLM alone learned it too slowly on the CPU budget.
        self.stem = nn.Conv2d(latent_channels * (context + 1) + features, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, width in enumerate(channels):
            self.down.append(_FiLMResBlock(channels[max(i - 1, 0)] if i else channels[0], width, cond_dim))
            self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1) if i < len(channels) - 1 else nn.Identity())
        self.mid = _FiLMResBlock(channels[-1], channels[-1], cond_dim)
        self.up = nn.ModuleList()
        for i in reversed(range(len(channels))):
            self.up.append(_FiLMResBlock(channels[i] * 2, channels[max(i - 1, 0)], cond_dim))
        self.out_norm = nn.GroupNorm(8, channels[0])
        self.out = nn.Conv2d(channels[0], latent_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def action_features(self, actions: torch.Tensor) -> torch.Tensor:
        """actions [B, 1 + action_history, A], oldest first; the last moves the last context frame to the next."""
        if actions.shape[1] != 1 + self.action_history:
            raise ValueError(f"expected the last {1 + self.action_history} actions, got {actions.shape[1]}")
        return actions.flatten(1)

    def forward(self, noisy: torch.Tensor, context: torch.Tensor, t: torch.Tensor, context_t: torch.Tensor,
                actions: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Prediction (v or x0) for the scaled residual (next - last context frame).

        noisy [B,C,h,w], context [B,n,C,h,w], actions: `action_features` [B, F]; dropped with `drop`.
        """
        action_emb = torch.where(drop[:, None], self.null_action.expand(len(drop), -1), self.action_mlp(actions))
        noise_emb = self.time_mlp(torch.cat([timestep_embedding(t, self.cond_dim),
                                             timestep_embedding(context_t, self.cond_dim).mean(1)], dim=-1))
        cond = F.silu(action_emb + noise_emb)
        planes = torch.where(drop[:, None], torch.zeros_like(actions), actions)[:, :, None, None].expand(-1, -1, *noisy.shape[-2:])
        x = self.stem(torch.cat([context.flatten(1, 2), noisy, planes.to(noisy.dtype)], dim=1))
        skips = []
        for block, down in zip(self.down, self.downsample):
            x = block(x, cond)
            skips.append(x)
            x = down(x)
        x = self.mid(x, cond)
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest") if x.shape[-1] != skip.shape[-1] else x
            x = block(torch.cat([x, skip], dim=1), cond)
        return self.out(F.silu(self.out_norm(x)))

    def loss(self, latents, actions, drop, padding=None):
        n, k, h, batch = self.context, self.forced_frames, self.action_history, latents.shape[0]
        length = n + 1 + k
        if latents.shape[1] != length:
            raise ValueError(f"ConvUNetDynamics trains on clips of {length} frames (context {n} + 1"
                             f"{f' + {k} for self-forcing' if k else ''}), got {latents.shape[1]}")
        context, target = latents[:, -n - 1:-1], latents[:, -1]
        forced = torch.arange(batch, device=latents.device) < round(self.self_forcing * batch)
        if padding is not None:
            # A rollout's first frame is real, never dreamed: keep it where it would be the first dreamed one.
            forced &= padding < n
        if forced.any():
            # Self-forcing: the last context frame of the forced clips is what a rollout would have
            # dreamed there from the frames before, so the target teaches the model to correct its
            # own errors.
            frames = latents[forced].clone()
            with torch.no_grad():
                frames[:, n] = self.sample_next(frames[:, :n], actions[forced, n - 1 - h:n], self.self_forcing_steps, 1.0)
            context = context.clone()
            context[forced] = frames[:, -n - 1:-1]
        # Diffusion forcing on the context: each context frame gets its own small noise level.
        context_t = torch.rand(batch, n, device=latents.device) * 2 * self.context_noise
        noisy_context, _ = add_noise(context, context_t, torch.randn_like(context), self.prediction)
        t = torch.rand(batch, device=latents.device)
        noise = torch.randn_like(target)
        x_t, goal = add_noise((target - context[:, -1]) * self.residual_scale, t, noise, self.prediction)
        output = self(x_t, noisy_context, t, context_t, self.action_features(actions[:, -1 - h:]), drop)
        return F.mse_loss(output.float(), goal.float())

    def start(self, first, window=0, generator=None):
        history = torch.zeros(first.shape[0], self.action_history, self.action_dim, device=first.device)
        return _ConvState(first[:, None].expand(-1, self.context, -1, -1, -1).clone(), history)

    @torch.no_grad()
    def sample_next(self, context: torch.Tensor, actions: torch.Tensor, steps: int, cfg_scale: float,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """The next latent [B, C, h, w] after clean context [B, n, C, h, w] and the last actions [B, 1 + action_history, A]."""
        last = context[:, -1]
        context = self._renoise(context.flatten(0, 1), generator).view_as(context)
        context_t = torch.full(context.shape[:2], self.context_noise, device=context.device)
        actions_in, drop = cfg_batch(self.action_features(actions), cfg_scale)
        double = (lambda x: torch.cat([x, x])) if cfg_scale != 1.0 else (lambda x: x)  # noqa: E731

        def velocity(x, t):
            v = self(double(x), double(context), double(t), double(context_t), actions_in, drop)
            return cfg_combine(v, cfg_scale)

        noise = torch.randn(last.shape, generator=generator, device=context.device)
        return last + ddim_sample(velocity, noise, steps, self.prediction) / self.residual_scale

    def next_latent(self, state: _ConvState, actions, steps, cfg_scale, generator=None):
        recent = torch.cat([state.history, actions[:, None]], dim=1)
        latent = self.sample_next(state.context, recent, steps, cfg_scale, generator)
        state.context = torch.cat([state.context[:, 1:], latent[:, None]], dim=1)
        state.history = recent[:, 1:]
        return latent
