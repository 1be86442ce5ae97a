"""The world model: a frame codec plus a dynamics trunk, named configs, checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import draccus
import numpy as np
import torch
import torch.nn as nn

from gymnast_core.action_spec import ActionSpec
from gymnast_core.torch_files import load_torch, save_torch
from gymnast_world_model.diffusion import PREDICTIONS
from gymnast_world_model.codec import FrameCodec, PixelUnshuffleCodec, SD3VAECodec
from gymnast_world_model.data import Clips
from gymnast_world_model.conv_unet import ConvUNetDynamics
from gymnast_world_model.dit import SpatioTemporalDiT
from gymnast_world_model.dynamics import Dynamics


@dataclass(frozen=True)
class WorldModelConfig(draccus.ChoiceRegistry):
    """Select with `--model.type NAME`; any field can then be overridden."""

    image_size: int = 64
    # 'pixel-unshuffle' (fixed, lossless) or 'sd3-vae' (diffusers AutoencoderKL from codec_path).
    codec: str = "pixel-unshuffle"
    codec_path: str = ""
    # Pixel-unshuffle factor.
    downsample: int = 2
    # 'conv-unet' or 'dit'.
    trunk: str = "conv-unet"
    # conv-unet: frames of context; channels per resolution.
    context: int = 3
    channels: tuple[int, ...] = (32, 64, 128)
    # dit: patch size on the latent grid, width, layers (spatial + temporal pairs), heads, clip length.
    patch: int = 2
    width: int = 256
    depth: int = 4
    heads: int = 4
    clip_length: int = 8
    # Noise level of context frames (diffusion forcing; rollouts re-noise their context to it).
    context_noise: float = 0.05
    # Probability of dropping a whole clip's actions (enables classifier-free guidance).
    action_dropout: float = 0.1
    # conv-unet: the next-frame residual is multiplied by this before diffusion (unit variance).
    residual_scale: float = 8.0
    # conv-unet: fraction of each batch whose last context frame is the model's own sample
    # (`self_forcing_steps` DDIM steps from the real frames before it), so it learns to correct
    # the errors a rollout feeds back to it.
    self_forcing: float = 0.0
    self_forcing_steps: int = 4
    # Network target: 'x0' or 'v'; see diffusion.py.
    prediction: str = "x0"
    # conv-unet: also condition on the actions into the last `action_history` frames (at most
    # context - 1): the arm lags its commands, so they shape the next motion.
    action_history: int = 0


@WorldModelConfig.register_subclass("cpu-default")
@dataclass(frozen=True)
class CpuDefaultConfig(WorldModelConfig):
    """~2.5M-param conv U-Net over the last 3 frames at 64 px (pixel-unshuffle 4 -> 16x16x48).

    The settings that gave the best 20-step fidelity within 30 minutes on 2 cores: self-forcing
    on half of each batch, and the two actions before the last (docs/world_model/report.md).
    """

    downsample: int = 4
    channels: tuple[int, ...] = (48, 96, 192)
    self_forcing: float = 0.5
    action_history: int = 2


@WorldModelConfig.register_subclass("cpu-dit")
@dataclass(frozen=True)
class CpuDiTConfig(WorldModelConfig):
    """A small spatio-temporal DiT at 64 px, for the equal-wall-clock comparison."""

    trunk: str = "dit"
    prediction: str = "v"
    patch: int = 4
    width: int = 192
    depth: int = 4
    heads: int = 4
    clip_length: int = 6


@WorldModelConfig.register_subclass("worldgym-600m")
@dataclass(frozen=True)
class WorldGym600MConfig(WorldModelConfig):
    """The paper's scale: 256 px, frozen SD3 VAE (32x32x16), patch 2, 16 layers, width 1024, 16 heads."""

    image_size: int = 256
    codec: str = "sd3-vae"
    codec_path: str = "checkpoints/sd3-vae"
    trunk: str = "dit"
    prediction: str = "v"
    patch: int = 2
    width: int = 1024
    depth: int = 16
    heads: int = 16
    clip_length: int = 20


@WorldModelConfig.register_subclass("tiny")
@dataclass(frozen=True)
class TinyConfig(WorldModelConfig):
    """For tests: 32 px, a few thousand parameters."""

    image_size: int = 32
    channels: tuple[int, ...] = (8, 16)


def encode_config(config: WorldModelConfig) -> dict[str, Any]:
    """A plain dict that `decode_config` turns back into the same registered config."""
    return {"type": WorldModelConfig.get_choice_name(type(config)), **draccus.encode(config)}


# Options removed since (they measured worse; docs/history.md) and the one value each still means.
REMOVED_OPTIONS = {"self_forcing_frames": 1, "anchor": False}


def decode_config(data: dict[str, Any]) -> WorldModelConfig:
    data = dict(data)
    for option, kept in REMOVED_OPTIONS.items():
        value = data.pop(option, kept)
        if value != kept:
            raise ValueError(f"this world model was trained with {option}={value!r}, an option since removed "
                             f"(only {kept!r} is supported); retrain it with `gymnast train-world-model`")
    if data.get("prediction") not in PREDICTIONS:
        raise ValueError(f"this world model predicts {data.get('prediction')!r}; supported: {', '.join(PREDICTIONS)}")
    # Checkpoints saved before `action_history` existed conditioned on the last action only
    # (cpu-default's default is now 2).
    return draccus.decode(WorldModelConfig, {"action_history": 0, **data})


def make_codec(config: WorldModelConfig) -> FrameCodec:
    if config.codec == "pixel-unshuffle":
        return PixelUnshuffleCodec(config.image_size, config.downsample)
    if config.codec == "sd3-vae":
        return SD3VAECodec(config.codec_path, config.image_size)
    raise ValueError(f"unknown codec {config.codec!r}; use 'pixel-unshuffle' or 'sd3-vae'")


class WorldModel(nn.Module):
    """Frames + actions (in the dataset's ActionSpec) -> imagined next frames."""

    def __init__(self, config: WorldModelConfig, action_spec: ActionSpec):
        super().__init__()
        if action_spec.stats is None:
            raise ValueError("the world model needs an ActionSpec with normalisation statistics (dataset.compute_stats())")
        if config.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {config.prediction!r}; use one of {PREDICTIONS}")
        self.config, self.action_spec = config, action_spec
        self.codec = make_codec(config)
        channels, size = self.codec.latent_channels, self.codec.latent_size
        if config.trunk == "conv-unet":
            self.dynamics: Dynamics = ConvUNetDynamics(
                channels, action_spec.dim, config.context, tuple(config.channels),
                context_noise=config.context_noise, action_dropout=config.action_dropout,
                residual_scale=config.residual_scale, prediction=config.prediction,
                self_forcing=config.self_forcing, self_forcing_steps=config.self_forcing_steps,
                action_history=config.action_history)
        elif config.trunk == "dit":
            if config.action_history:
                raise ValueError("action_history is for the conv-unet trunk; the DiT attends over its whole "
                                 "window, with the action into each frame")
            self.dynamics = SpatioTemporalDiT(
                channels, size, action_spec.dim, config.patch, config.width, config.depth, config.heads,
                config.context_noise, config.action_dropout, config.clip_length, prediction=config.prediction)
        else:
            raise ValueError(f"unknown trunk {config.trunk!r}; use 'conv-unet' or 'dit'")

    @property
    def clip_length(self) -> int:
        if self.config.trunk == "conv-unet":
            # Self-forcing needs its dreamed frames more: the model first predicts them.
            return self.config.context + 1 + (self.config.self_forcing > 0)
        return self.config.clip_length

    @property
    def clip_padding(self) -> int:
        # A conv rollout starts with its context filled by copies of the first frame: clips may start
        # early enough that the whole context is such copies (also with self-forcing's extra frame).
        return self.clip_length - 2 if self.config.trunk == "conv-unet" else 0

    def normalize_actions(self, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape[-1] != self.action_spec.dim:
            raise ValueError(
                f"actions: expected dimension {self.action_spec.dim} ({', '.join(self.action_spec.names)}), got shape {actions.shape}")
        return torch.from_numpy(self.action_spec.normalize(actions))

    def loss(self, clips: Clips) -> torch.Tensor:
        device = next(self.dynamics.parameters()).device
        frames = torch.from_numpy(clips.frames).to(device)
        batch, length = frames.shape[:2]
        latents = self.codec.encode(frames.flatten(0, 1)).unflatten(0, (batch, length))
        drop = torch.rand(batch, device=latents.device) < self.config.action_dropout
        return self.dynamics.loss(latents, torch.from_numpy(clips.actions).to(device), drop,
                                  torch.from_numpy(clips.padding).to(device))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.dynamics.parameters())


def save_checkpoint(path: str | Path, model: WorldModel, ema: nn.Module, extra: dict[str, Any]) -> None:
    """Atomically write weights, EMA weights, config, ActionSpec and training state."""
    state = {
        "kind": "gymnast-world-model",
        "config": encode_config(model.config),
        "action_spec": model.action_spec.to_dict(),
        "model": model.dynamics.state_dict(),
        "ema": ema.state_dict(),
        **extra,
    }
    save_torch(path, state)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    state = load_torch(path, "world-model checkpoint", "train one with `gymnast train-world-model`")
    if not isinstance(state, dict) or state.get("kind") != "gymnast-world-model":
        raise ValueError(f"{path}: not a gymnast world-model checkpoint")
    return state


def export_world_model(source: str | Path, target: str | Path) -> None:
    """A small inference-only copy (EMA weights, config, ActionSpec, training summary) to ship."""
    state = read_checkpoint(source)
    slim = {key: state[key] for key in ("kind", "config", "action_spec", "ema", "step", "elapsed", "holdout_fraction", "dataset")
            if key in state}
    save_torch(target, slim)


def resolve_device(name: str) -> torch.device:
    """'auto' = CUDA when available, else CPU; any other name is used as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device {name!r}: not a torch device name ('auto', 'cpu', 'cuda', 'cuda:1', ...)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available on this machine; use 'cpu' or 'auto'")
    return device


def load_world_model(path: str | Path, use_ema: bool = True, device: str = "cpu") -> WorldModel:
    """A trained world model in eval mode on `device` (EMA weights by default; exports hold only those)."""
    target = resolve_device(device)
    state = read_checkpoint(path)
    config = decode_config(state["config"])
    model = WorldModel(config, ActionSpec.from_dict(state["action_spec"]))
    weights = state["ema"] if use_ema or "model" not in state else state["model"]
    try:
        model.dynamics.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the saved config {config}: {exc}") from exc
    return model.to(target).eval()
