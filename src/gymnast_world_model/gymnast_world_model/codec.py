"""Frame codecs: uint8 frames <-> the latent grids the dynamics model works in.

- `PixelUnshuffleCodec`: a fixed, lossless space-to-depth rearrangement. The CPU default:
  at 64 px an 8x-down VAE latent erases the 2-4 px objects the tasks are about.
- `SD3VAECodec`: the frozen SD3-style `AutoencoderKL` (16 channels, 8x down), loaded with
  diffusers from a local folder. The scale path (256 px -> 32x32x16 latents).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class FrameCodec(nn.Module, ABC):
    """Maps uint8 [N, H, W, 3] frames to float latents [N, C, h, w] and back.

    A module of the world model, so `.to(device)` moves a codec with weights along; frozen, so
    it stays in eval mode when the model trains.
    """

    image_size: int
    latent_channels: int
    downsample: int

    def train(self, mode: bool = True) -> FrameCodec:
        return super().train(False)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    def check_frames(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        frames = torch.as_tensor(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or tuple(frames.shape[1:3]) != (self.image_size, self.image_size):
            raise ValueError(
                f"frames: expected [N, {self.image_size}, {self.image_size}, 3] uint8, got {tuple(frames.shape)}; "
                "resize frames to the codec's image_size first"
            )
        return frames

    @abstractmethod
    def encode(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor: ...

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> uint8 [N, H, W, 3]."""


def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1]."""
    return frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def from_unit(images: torch.Tensor) -> torch.Tensor:
    """float [N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3]."""
    return ((images.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


class PixelUnshuffleCodec(FrameCodec):
    def __init__(self, image_size: int = 64, downsample: int = 2):
        super().__init__()
        if image_size % downsample:
            raise ValueError(f"image_size {image_size} is not divisible by downsample {downsample}")
        self.image_size, self.downsample = image_size, downsample
        self.latent_channels = 3 * downsample * downsample

    def encode(self, frames):
        return F.pixel_unshuffle(to_unit(self.check_frames(frames)), self.downsample)

    def decode(self, latents):
        return from_unit(F.pixel_shuffle(latents, self.downsample))


class SD3VAECodec(FrameCodec):
    """diffusers `AutoencoderKL` from a local folder (config.json + weights), frozen."""

    def __init__(self, path: str | Path, image_size: int = 256, dtype: torch.dtype = torch.float32):
        from diffusers import AutoencoderKL

        super().__init__()
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path}: no AutoencoderKL checkpoint here (config.json missing)")
        self.vae = AutoencoderKL.from_pretrained(path, torch_dtype=dtype).eval().requires_grad_(False)
        config = self.vae.config
        self.image_size = image_size
        self.latent_channels = config.latent_channels
        self.downsample = 2 ** (len(config.block_out_channels) - 1)
        # SD3 normalises latents with a shift and a scale stored in the config.
        self.scale = float(config.scaling_factor)
        self.shift = float(config.shift_factor or 0.0)

    @torch.no_grad()
    def encode(self, frames):
        images = to_unit(self.check_frames(frames)).to(self.vae.device, self.vae.dtype)
        latents = self.vae.encode(images).latent_dist.mode()
        return ((latents - self.shift) * self.scale).float()

    @torch.no_grad()
    def decode(self, latents):
        images = self.vae.decode(latents.to(self.vae.device, self.vae.dtype) / self.scale + self.shift).sample
        return from_unit(images.cpu())
