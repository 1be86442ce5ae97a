"""Dynamics trunks behind one objective (diffusion.py) and one rollout interface.

`Dynamics.loss` trains on clips of latents; `Dynamics.start` / `Dynamics.next_latent` roll
out B dreams in one batch. Two trunks:

- `ConvUNetDynamics` (CPU default): a small U-Net over the last `context` frames and the
  noisy next frame, with FiLM conditioning on the action and noise levels; it denoises the
  residual over the last frame. Fixed context, so the cost per frame is flat by design.
- `SpatioTemporalDiT` (scale path, WorldGym-style): every layer is a spatial block
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
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from gymnast_world_model.diffusion import add_noise, ddim_sample


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of noise levels t in [0, 1], any leading shape."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t.float()[..., None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@dataclass
class Anchor:
    """The real frame a dream started from and the actions taken since (conv trunk, `anchor=True`)."""

    latent: torch.Tensor  # [B, C, h, w]
    displacement: torch.Tensor  # [B, A], sum of normalised actions up to the frame being predicted


class Dynamics(nn.Module, ABC):
    """A next-frame latent model trained by denoising (v or x0 target) and sampled with DDIM."""

    action_dim: int
    context_noise: float  # noise level context frames are re-noised to at rollout time

    @abstractmethod
    def loss(self, latents: torch.Tensor, actions: torch.Tensor, drop: torch.Tensor,
             anchor: Anchor | None = None, padding: torch.Tensor | None = None) -> torch.Tensor:
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


def _cfg_batch(actions: torch.Tensor, cfg_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions and drop mask for one batched forward of [conditional; unconditional]."""
    batch = actions.shape[0]
    keep = torch.zeros(batch, dtype=torch.bool, device=actions.device)
    if cfg_scale == 1.0:
        return actions, keep
    return torch.cat([actions, actions]), torch.cat([keep, ~keep])


def _cfg_combine(v: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    if cfg_scale == 1.0:
        return v
    v_cond, v_uncond = v.chunk(2)
    return v_uncond + cfg_scale * (v_cond - v_uncond)


# ---------------------------------------------------------------------------------------------
# Conv U-Net trunk (CPU default)
# ---------------------------------------------------------------------------------------------
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
    anchor: Anchor | None


# Displacements sum up to ~40 actions in [-1, 1]; this brings them near the actions' range.
DISPLACEMENT_SCALE = 10.0


class ConvUNetDynamics(Dynamics):
    def __init__(self, latent_channels: int, action_dim: int, context: int = 3,
                 channels: tuple[int, ...] = (32, 64, 128), cond_dim: int = 128,
                 context_noise: float = 0.05, action_dropout: float = 0.1, residual_scale: float = 8.0,
                 prediction: str = "x0", self_forcing: float = 0.0, self_forcing_steps: int = 4,
                 self_forcing_frames: int = 1, anchor: bool = False, action_history: int = 0):
        super().__init__()
        self.anchor = anchor
        if not 0 <= action_history < context:
            raise ValueError(f"action_history must be in [0, context - 1] = [0, {context - 1}], got {action_history}")
        # The arm follows an action with a lag (a mocap weld in Meta-World, a position controller on a
        # real arm), so the next motion depends on the actions before the last one too; in a long
        # rollout they are exact where the dreamed frames' apparent velocity is not.
        self.action_history = action_history
        self.latent_channels, self.action_dim, self.context = latent_channels, action_dim, context
        self.prediction = prediction
        if self_forcing_frames < 1:
            raise ValueError(f"self_forcing_frames must be at least 1, got {self_forcing_frames}")
        self.self_forcing, self.self_forcing_steps = self_forcing, self_forcing_steps
        # Frames the model dreams in a chain before the target (clips are this much longer).
        self.forced_frames = self_forcing_frames if self_forcing > 0 else 0
        # Frame-to-frame residuals are ~8x smaller than unit noise; scaled to unit variance,
        # the high-noise levels (where the motion is decided) carry weight in the loss.
        self.residual_scale = residual_scale
        self.context_noise, self.action_dropout = context_noise, action_dropout
        self.cond_dim = cond_dim
        # The action features: the last 1 + action_history actions, and with an anchor the
        # displacement since it.
        features = (1 + action_history + anchor) * action_dim
        self.action_mlp = nn.Sequential(nn.Linear(features, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.null_action = nn.Parameter(torch.zeros(cond_dim))
        # Separate embeddings of the target's and the context's noise levels, concatenated.
        self.time_mlp = nn.Sequential(nn.Linear(2 * cond_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        # The action also enters as constant input planes, so the first convolution can already
        # place the motion; FiLM alone learned it too slowly on the CPU budget.
        frames_in = context + 1 + anchor
        self.stem = nn.Conv2d(latent_channels * frames_in + features, channels[0], 3, padding=1)
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

    def action_features(self, actions: torch.Tensor, anchor: Anchor | None) -> torch.Tensor:
        """actions [B, 1 + action_history, A], oldest first; the last moves the last context frame to the next."""
        if actions.shape[1] != 1 + self.action_history:
            raise ValueError(f"expected the last {1 + self.action_history} actions, got {actions.shape[1]}")
        features = actions.flatten(1)
        if not self.anchor:
            return features
        if anchor is None:
            raise ValueError("this model was trained with anchor=True and needs the dream's first frame and displacement")
        return torch.cat([features, anchor.displacement / DISPLACEMENT_SCALE], dim=-1)

    def forward(self, noisy: torch.Tensor, context: torch.Tensor, t: torch.Tensor, context_t: torch.Tensor,
                actions: torch.Tensor, drop: torch.Tensor, anchor_latent: torch.Tensor | None = None) -> torch.Tensor:
        """Prediction (v or x0) for the scaled residual (next - last context frame).

        noisy [B,C,h,w], context [B,n,C,h,w], actions: `action_features` [B, F]; dropped with `drop`.
        """
        action_emb = torch.where(drop[:, None], self.null_action.expand(len(drop), -1), self.action_mlp(actions))
        noise_emb = self.time_mlp(torch.cat([timestep_embedding(t, self.cond_dim),
                                             timestep_embedding(context_t, self.cond_dim).mean(1)], dim=-1))
        cond = F.silu(action_emb + noise_emb)
        planes = torch.where(drop[:, None], torch.zeros_like(actions), actions)[:, :, None, None].expand(-1, -1, *noisy.shape[-2:])
        frames = [context.flatten(1, 2), noisy] + ([anchor_latent] if self.anchor else [])
        x = self.stem(torch.cat([*frames, planes.to(noisy.dtype)], dim=1))
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

    def loss(self, latents, actions, drop, anchor=None, padding=None):
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
            # Self-forcing: the last k context frames of the forced clips are what a rollout would
            # have dreamed there, each from the ones before, so the target teaches the model to
            # correct its own (compounded) errors.
            frames = latents[forced].clone()
            with torch.no_grad():
                for position in range(n, n + k):
                    before = None if anchor is None else Anchor(
                        anchor.latent[forced], anchor.displacement[forced] - actions[forced, position:].sum(1))
                    frames[:, position] = self.sample_next(frames[:, position - n:position], actions[forced, position - 1 - h:position],
                                                           self.self_forcing_steps, 1.0, anchor=before)
            context = context.clone()
            context[forced] = frames[:, -n - 1:-1]
        # Diffusion forcing on the context: each context frame gets its own small noise level.
        context_t = torch.rand(batch, n, device=latents.device) * 2 * self.context_noise
        noisy_context, _ = add_noise(context, context_t, torch.randn_like(context), self.prediction)
        t = torch.rand(batch, device=latents.device)
        noise = torch.randn_like(target)
        x_t, goal = add_noise((target - context[:, -1]) * self.residual_scale, t, noise, self.prediction)
        output = self(x_t, noisy_context, t, context_t, self.action_features(actions[:, -1 - h:], anchor), drop,
                      None if anchor is None else anchor.latent)
        return F.mse_loss(output.float(), goal.float())

    def start(self, first, window=0, generator=None):
        anchor = Anchor(first, torch.zeros(first.shape[0], self.action_dim, device=first.device)) if self.anchor else None
        history = torch.zeros(first.shape[0], self.action_history, self.action_dim, device=first.device)
        return _ConvState(first[:, None].expand(-1, self.context, -1, -1, -1).clone(), history, anchor)

    @torch.no_grad()
    def sample_next(self, context: torch.Tensor, actions: torch.Tensor, steps: int, cfg_scale: float,
                    generator: torch.Generator | None = None, anchor: Anchor | None = None) -> torch.Tensor:
        """The next latent [B, C, h, w] after clean context [B, n, C, h, w] and the last actions [B, 1 + action_history, A]."""
        last = context[:, -1]
        context = self._renoise(context.flatten(0, 1), generator).view_as(context)
        context_t = torch.full(context.shape[:2], self.context_noise, device=context.device)
        actions_in, drop = _cfg_batch(self.action_features(actions, anchor), cfg_scale)
        double = (lambda x: torch.cat([x, x])) if cfg_scale != 1.0 else (lambda x: x)  # noqa: E731
        anchor_latent = None if anchor is None else double(anchor.latent)

        def velocity(x, t):
            v = self(double(x), double(context), double(t), double(context_t), actions_in, drop, anchor_latent)
            return _cfg_combine(v, cfg_scale)

        noise = torch.randn(last.shape, generator=generator, device=context.device)
        return last + ddim_sample(velocity, noise, steps, self.prediction) / self.residual_scale

    def next_latent(self, state: _ConvState, actions, steps, cfg_scale, generator=None):
        if state.anchor is not None:
            state.anchor.displacement = state.anchor.displacement + actions
        recent = torch.cat([state.history, actions[:, None]], dim=1)
        latent = self.sample_next(state.context, recent, steps, cfg_scale, generator, state.anchor)
        state.context = torch.cat([state.context[:, 1:], latent[:, None]], dim=1)
        state.history = recent[:, 1:]
        return latent


# ---------------------------------------------------------------------------------------------
# Spatio-temporal DiT trunk (scale path)
# ---------------------------------------------------------------------------------------------
def _rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary embedding over the last dim of x [..., T, d] at integer frame positions [T]."""
    half = x.shape[-1] // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=x.device) / half)
    angles = positions.float()[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class _AdaLNBlock(nn.Module):
    """Pre-norm attention + MLP, each modulated (shift, scale, gate) by the frame's condition.

    adaLN-Zero: the modulation is zero-initialised, so every block starts as the identity.
    """

    def __init__(self, width: int, heads: int, temporal: bool):
        super().__init__()
        self.heads, self.temporal = heads, temporal
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        shape = (*x.shape[:-1], self.heads, -1)
        return tuple(y.reshape(shape).transpose(-2, -3) for y in (q, k, v))  # [..., heads, seq, dh]

    def forward(self, x, cond, positions=None, past_kv=None):
        """x: [B, T, N, D]; cond: [B, T, D]. Spatial attends over N; temporal over T (causal).

        Temporal with `past_kv`: x holds only new frames; keys/values of earlier frames come
        from the cache. Returns (x, (k, v)) where k, v are this call's temporal keys/values.
        """
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(cond))[:, :, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        new_kv = None
        if self.temporal:
            h = h.transpose(1, 2)  # [B, N, T, D]
            q, k, v = self._split(h)
            q, k = _rope(q, positions), _rope(k, positions)
            new_kv = (k, v)
            if past_kv is not None:
                k, v = torch.cat([past_kv[0], k], dim=-2), torch.cat([past_kv[1], v], dim=-2)
            # Causal over frames: new frame i may see every cached frame and new frames <= i.
            t_new, t_all = q.shape[-2], k.shape[-2]
            mask = torch.ones(t_new, t_all, dtype=torch.bool, device=x.device).tril(t_all - t_new)
            h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            h = self.proj(h.transpose(-2, -3).flatten(-2)).transpose(1, 2)
        else:
            q, k, v = self._split(h)
            h = self.proj(F.scaled_dot_product_attention(q, k, v).transpose(-2, -3).flatten(-2))
        x = x + gate1 * h
        x = x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)
        return x, new_kv


@dataclass
class _DiTState:
    # Per temporal layer: (k, v) of the cached frames [B, N, heads, T_cached, dh].
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None
    last: torch.Tensor  # latest clean latent [B, C, h, w]
    position: int  # frame index of the next frame
    window: int
    # Uncached mode: the re-noised context latents and the action into each.
    history: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


class SpatioTemporalDiT(Dynamics):
    def __init__(self, latent_channels: int, latent_size: int, action_dim: int, patch: int = 2, width: int = 256,
                 depth: int = 4, heads: int = 4, context_noise: float = 0.05, action_dropout: float = 0.1,
                 clip_length: int = 8, use_kv_cache: bool = True, prediction: str = "v"):
        super().__init__()
        self.prediction = prediction
        if latent_size % patch:
            raise ValueError(f"latent_size {latent_size} is not divisible by patch {patch}")
        self.latent_channels, self.latent_size, self.patch = latent_channels, latent_size, patch
        self.action_dim, self.width = action_dim, width
        self.context_noise, self.action_dropout, self.clip_length = context_noise, action_dropout, clip_length
        self.use_kv_cache = use_kv_cache
        tokens = (latent_size // patch) ** 2
        self.patchify = nn.Linear(latent_channels * patch * patch, width)
        self.pos = nn.Parameter(torch.randn(1, 1, tokens, width) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.action_mlp = nn.Sequential(nn.Linear(action_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.null_action = nn.Parameter(torch.zeros(width))
        self.blocks = nn.ModuleList(_AdaLNBlock(width, heads, temporal=i % 2 == 1) for i in range(2 * depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_mod = nn.Linear(width, 2 * width)
        self.unpatchify = nn.Linear(width, latent_channels * patch * patch)
        for layer in (self.final_mod, self.unpatchify):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, T, C, h, w] -> [B, T, N, C p p]."""
        p = self.patch
        x = F.pixel_unshuffle(latents.flatten(0, 1), p)  # [BT, C p p, h/p, w/p]
        return x.flatten(2).transpose(1, 2).unflatten(0, latents.shape[:2])

    def _untokens(self, tokens: torch.Tensor) -> torch.Tensor:
        side = self.latent_size // self.patch
        x = tokens.flatten(0, 1).transpose(1, 2).unflatten(2, (side, side))
        return F.pixel_shuffle(x, self.patch).unflatten(0, tokens.shape[:2])

    def _cond(self, t: torch.Tensor, actions: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Per-frame condition [B, T, D]: noise level + the action that led into the frame.

        drop [B] drops a whole clip's actions; [B, T] drops per frame.
        """
        action_emb = self.action_mlp(actions)
        drop = drop[:, None] if drop.ndim == 1 else drop
        action_emb = torch.where(drop[..., None], self.null_action.expand_as(action_emb), action_emb)
        return self.time_mlp(timestep_embedding(t, self.width)) + action_emb

    def forward(self, latents, t, actions_in, drop, positions, past_kv=None):
        """latents [B, T, C, h, w] at noise levels t [B, T]; actions_in [B, T, A] (action into each frame)."""
        x = self.patchify(self._tokens(latents)) + self.pos
        cond = self._cond(t, actions_in, drop)
        new_kv = []
        temporal_index = 0
        for block in self.blocks:
            past = past_kv[temporal_index] if (block.temporal and past_kv is not None) else None
            x, kv = block(x, cond, positions, past)
            if block.temporal:
                new_kv.append(kv)
                temporal_index += 1
        shift, scale = self.final_mod(F.silu(cond))[:, :, None].chunk(2, dim=-1)
        return self._untokens(self.unpatchify(self.final_norm(x) * (1 + scale) + shift)), new_kv

    @staticmethod
    def _actions_into_frames(actions: torch.Tensor) -> torch.Tensor:
        """[B, L-1, A] actions between frames -> [B, L, A] action into each frame (zeros into frame 0)."""
        return torch.cat([torch.zeros_like(actions[:, :1]), actions], dim=1)

    def loss(self, latents, actions, drop, anchor=None, padding=None):
        if anchor is not None:
            raise ValueError("the DiT takes no anchor: its temporal attention sees the whole window")
        batch, length = latents.shape[:2]
        t = torch.rand(batch, length, device=latents.device)
        x_t, goal = add_noise(latents, t, torch.randn_like(latents), self.prediction)
        positions = torch.arange(length, device=latents.device)
        output, _ = self(x_t, t, self._actions_into_frames(actions), drop, positions)
        return F.mse_loss(output.float(), goal.float())

    def start(self, first, window=20, generator=None):
        if window < 2:
            raise ValueError(f"context window must be >= 2 frames, got {window}")
        state = _DiTState(kv=None, last=first, position=0, window=window)
        self._append(state, first, torch.zeros(first.shape[0], self.action_dim, device=first.device), generator)
        return state

    def _append(self, state: _DiTState, latent: torch.Tensor, action: torch.Tensor, generator) -> None:
        """Add a finished frame to the context, re-noised to the context noise level."""
        state.last = latent
        noisy = self._renoise(latent, generator)
        if not self.use_kv_cache:
            state.history = (state.history + [(noisy, action)])[-(state.window - 1):]
            state.position += 1
            return
        t = torch.full((latent.shape[0], 1), self.context_noise, device=latent.device)
        drop = torch.zeros(latent.shape[0], dtype=torch.bool, device=latent.device)
        positions = torch.tensor([state.position], device=latent.device)
        _, kv = self(noisy[:, None], t, action[:, None], drop, positions, state.kv)
        if state.kv is not None:
            kv = [(torch.cat([k0, k1], dim=-2), torch.cat([v0, v1], dim=-2)) for (k0, v0), (k1, v1) in zip(state.kv, kv)]
        # A sliding window: the new frame plus the last window - 1 frames.
        state.kv = [(k[..., -(state.window - 1):, :], v[..., -(state.window - 1):, :]) for k, v in kv]
        state.position += 1

    @torch.no_grad()
    def next_latent(self, state: _DiTState, actions, steps, cfg_scale, generator=None):
        actions_in, drop = _cfg_batch(actions, cfg_scale)
        double = (lambda x: torch.cat([x, x])) if cfg_scale != 1.0 else (lambda x: x)  # noqa: E731
        if self.use_kv_cache:
            past = None if state.kv is None else [(double(k), double(v)) for k, v in state.kv]
            positions = torch.tensor([state.position], device=actions.device)

            def velocity(x, t):
                v, _ = self(double(x)[:, None], double(t)[:, None], actions_in[:, None], drop, positions, past)
                return _cfg_combine(v[:, 0], cfg_scale)
        else:
            # Recompute the whole (windowed) context at every denoising step.
            context = torch.stack([latent for latent, _ in state.history], dim=1)
            past_actions = torch.stack([action for _, action in state.history], dim=1)
            positions = torch.arange(state.position - context.shape[1], state.position + 1, device=actions.device)
            seq_actions = torch.cat([double(past_actions), actions_in[:, None]], dim=1)
            # Guidance drops only the new frame's action, as the cached context keeps its own.
            seq_drop = torch.zeros(seq_actions.shape[:2], dtype=torch.bool, device=actions.device)
            seq_drop[:, -1] = drop

            def velocity(x, t):
                seq = torch.cat([double(context), double(x)[:, None]], dim=1)
                times = torch.full(seq.shape[:2], self.context_noise, device=x.device)
                times[:, -1] = double(t)
                v, _ = self(seq, times, seq_actions, seq_drop, positions)
                return _cfg_combine(v[:, -1], cfg_scale)

        noise = torch.randn(state.last.shape, generator=generator, device=actions.device)
        latent = ddim_sample(velocity, noise, steps, self.prediction)
        self._append(state, latent, actions, generator)
        return latent
