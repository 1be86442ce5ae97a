"""Policy checkpoints: a folder with `policy.json` (backbone config + ActionSpec with its
normalisation statistics) and `weights.pt`. The weights are written first and the JSON last,
each atomically, so a folder with a policy.json always holds a complete checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gymnast_core.action_spec import ActionSpec
from gymnast_core.atomic import read_json, write_json
from gymnast_core.torch_files import load_torch, save_torch
from gymnast_policy.base import TokenPolicy
from gymnast_policy.compact_vla import CompactVLA, CompactVLAConfig


def save_policy(policy: TokenPolicy, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    folder = Path(folder)
    save_torch(folder / "weights.pt", policy.state_dict())
    write_json(folder / "policy.json", {"kind": "gymnast-policy", "backbone": policy.config_dict(),
                                        "action_spec": policy.action_spec.to_dict(), **(extra or {})})
    return folder


def build_policy(backbone: dict[str, Any], action_spec: ActionSpec) -> TokenPolicy:
    backbone = dict(backbone)
    kind = backbone.pop("backbone", None)
    if kind == "compact":
        return CompactVLA(CompactVLAConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in backbone.items()}), action_spec)
    if kind == "hf":
        from gymnast_policy.hf_vla import HFVLAPolicy

        return HFVLAPolicy(action_spec=action_spec, **backbone)
    raise ValueError(f"unknown policy backbone {kind!r}; expected 'compact' or 'hf'")


def load_policy(folder: str | Path, device: str = "cpu") -> TokenPolicy:
    folder = Path(folder)
    meta_path = folder / "policy.json"
    meta = read_json(meta_path, "policy checkpoint not found (train one with `gymnast sft`)")
    if meta.get("kind") != "gymnast-policy":
        raise ValueError(f"{meta_path}: not a gymnast policy checkpoint")
    try:
        action_spec = ActionSpec.from_dict(meta["action_spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{meta_path}: field 'action_spec' is invalid: {exc}") from exc
    policy = build_policy(meta["backbone"], action_spec)
    state = load_torch(folder / "weights.pt", "policy weights")
    try:
        policy.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{folder / 'weights.pt'}: weights do not match policy.json's backbone: {exc}") from exc
    return policy.to(device).eval()
