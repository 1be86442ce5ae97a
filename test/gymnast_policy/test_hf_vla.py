"""The Hugging Face backbone adapter on tiny random-weight checkpoints that the test saves itself."""

import numpy as np
import pytest
import torch

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC, NormStats
from gymnast_policy.checkpoint import load_policy, save_policy
from gymnast_policy.hf_vla import HFVLAPolicy

SPEC = BRIDGE_ACTION_SPEC.with_stats(NormStats.from_actions(np.random.default_rng(0).uniform(-0.05, 0.05, (100, 7))))


BACKBONES = ("paligemma",)


@pytest.mark.parametrize("name", BACKBONES)
def test_tiny_backbone_runs_forward_and_backward(name, tmp_path, save_tiny_vlm):
    save_tiny_vlm(name, tmp_path / name)
    policy = HFVLAPolicy(tmp_path / name, SPEC, chunk_size=2, image_size=32)
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    instructions = ["open the drawer", "press the button"]
    logits = policy.logits(torch.from_numpy(frames), instructions)
    assert logits.shape == (2, 14, 256)
    chunk = policy.act(frames, instructions, temperature=1.0)
    assert chunk.actions.shape == (2, 2, 7)
    loss = -policy.logprob(frames, instructions, chunk.tokens).mean()
    loss.backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    # Save/load keeps weights and statistics: identical greedy actions.
    save_policy(policy, tmp_path / "ckpt")
    reloaded = load_policy(tmp_path / "ckpt")
    np.testing.assert_array_equal(policy.act(frames, instructions, 0).actions, reloaded.act(frames, instructions, 0).actions)


def test_missing_hf_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        HFVLAPolicy(tmp_path / "nothing", SPEC)
