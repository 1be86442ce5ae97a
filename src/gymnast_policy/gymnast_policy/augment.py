"""Image augmentation for SFT, in torch (torchvision does not work beside torch 2.13 here)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift_crop(frames: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad by `pad` (edge replicate) and crop back at a random offset per image. uint8 [B, H, W, 3]."""
    if pad <= 0:
        return frames
    batch, height, width, _ = frames.shape
    padded = F.pad(frames.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    rows = (dy[:, None] + torch.arange(height)[None])[:, :, None].expand(-1, -1, width)
    cols = (dx[:, None] + torch.arange(width)[None])[:, None, :].expand(-1, height, -1)
    out = padded[torch.arange(batch)[:, None, None], :, rows, cols]  # [B, H, W, 3]
    return out.round().to(torch.uint8)


def color_jitter(frames: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast and saturation factors in [1 - s, 1 + s] per image."""
    if strength <= 0:
        return frames
    x = frames.float() / 255.0
    factors = 1.0 + strength * (2 * torch.rand(3, len(frames), 1, 1, 1, generator=generator) - 1)
    x = x * factors[0]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factors[1] + mean
    grey = x.mean(dim=-1, keepdim=True)
    x = (x - grey) * factors[2] + grey
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)
