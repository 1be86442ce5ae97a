"""The scale-path trunk: a spatio-temporal DiT with a KV cache over a sliding window of frames.

See dynamics.py for the interface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from gymnast_world_model.diffusion import add_noise, ddim_sample
from gymnast_world_model.dynamics import Dynamics, cfg_batch, cfg_combine, timestep_embedding


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

    def loss(self, latents, actions, drop, padding=None):
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
        actions_in, drop = cfg_batch(actions, cfg_scale)
        double = (lambda x: torch.cat([x, x])) if cfg_scale != 1.0 else (lambda x: x)  # noqa: E731
        if self.use_kv_cache:
            past = None if state.kv is None else [(double(k), double(v)) for k, v in state.kv]
            positions = torch.tensor([state.position], device=actions.device)

            def velocity(x, t):
                v, _ = self(double(x)[:, None], double(t)[:, None], actions_in[:, None], drop, positions, past)
                return cfg_combine(v[:, 0], cfg_scale)
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
                return cfg_combine(v[:, -1], cfg_scale)

        noise = torch.randn(state.last.shape, generator=generator, device=actions.device)
        latent = ddim_sample(velocity, noise, steps, self.prediction)
        self._append(state, latent, actions, generator)
        return latent
