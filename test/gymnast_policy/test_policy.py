import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC, ActionSpec, NormStats
from gymnast_core.config_checks import ConfigError
from gymnast_core.torch_files import load_torch
from gymnast_policy.augment import color_jitter, random_shift_crop
from gymnast_policy.checkpoint import load_policy, save_policy
from gymnast_policy.compact_vla import CompactVLA, CompactVLAConfig
from gymnast_policy.tokenizer import ActionTokenizer

RNG = np.random.default_rng(0)
SPEC = BRIDGE_ACTION_SPEC.with_stats(NormStats.from_actions(
    np.concatenate([RNG.uniform(-0.05, 0.05, (500, 6)), RNG.integers(0, 2, (500, 1))], axis=1)))
TINY = CompactVLAConfig(image_size=32, width=32, depth=1, heads=2, vision_channels=(8, 16), chunk_size=2, bins=16)


def test_tokenizer_round_trip_is_within_half_a_bin():
    tokenizer = ActionTokenizer(SPEC, bins=256, chunk_size=5)
    actions = np.concatenate([RNG.uniform(-0.04, 0.04, (64, 5, 6)), RNG.integers(0, 2, (64, 5, 1))], axis=-1).astype(np.float32)
    tokens = tokenizer.encode(actions)
    assert tokens.shape == (64, 35) and tokens.min() >= 0 and tokens.max() < 256
    decoded = tokenizer.decode(tokens)
    # Half a bin, in normalised units, is 1/256; compare in normalised space.
    error = np.abs(SPEC.normalize(decoded) - SPEC.normalize(actions))
    assert error.max() <= 1 / 256 + 1e-6
    # The gripper keeps its convention: open (1) stays open, closed (0) stays closed.
    np.testing.assert_allclose(np.round(decoded[..., 6]), actions[..., 6])


def test_tokenizer_rejects_bad_shapes_and_ids():
    tokenizer = ActionTokenizer(SPEC, chunk_size=5)
    with pytest.raises(ValueError, match="expected \\[..., 5, 7\\]"):
        tokenizer.encode(np.zeros((5, 6)))
    with pytest.raises(ValueError, match="must lie in"):
        tokenizer.decode(np.full(35, 256))


@pytest.fixture(scope="module")
def tiny_policy():
    torch.manual_seed(0)
    return CompactVLA(TINY, SPEC).eval()


def test_logprob_matches_the_sampling_distribution(tiny_policy):
    frames = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    instruction = ["open the drawer"]
    with torch.no_grad():
        logits = tiny_policy.logits(torch.from_numpy(frames), instruction)[0].float()
    for temperature in (1.0, 1.6):
        probs = torch.softmax(logits / temperature, -1)
        samples = [tiny_policy.act(np.repeat(frames, 500, 0), instruction * 500, temperature) for _ in range(4)]
        tokens = np.concatenate([s.tokens for s in samples])
        # Empirical frequency of each bin of the first token vs the model's probabilities.
        empirical = np.bincount(tokens[:, 0], minlength=16) / len(tokens)
        assert np.abs(empirical - probs[0].numpy()).max() < 0.05
        # The logprob returned with a sample equals logprob() of the same tokens at that temperature.
        recomputed = tiny_policy.logprob(np.repeat(frames, 8, 0), instruction * 8, samples[0].tokens[:8], temperature)
        np.testing.assert_allclose(samples[0].logprobs[:8], recomputed.detach().numpy(), rtol=1e-4, atol=1e-4)
        expected = torch.log(probs.gather(-1, torch.from_numpy(samples[0].tokens[0])[:, None])).sum()
        assert recomputed[0].item() == pytest.approx(expected.item(), abs=1e-4)


def test_greedy_act_is_the_argmax(tiny_policy):
    frames = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    chunk = tiny_policy.act(frames, ["press the button"] * 3, temperature=0)
    with torch.no_grad():
        argmax = tiny_policy.logits(torch.from_numpy(frames), ["press the button"] * 3).argmax(-1).numpy()
    np.testing.assert_array_equal(chunk.tokens, argmax)
    assert chunk.actions.shape == (3, 2, 7)


def test_save_load_gives_identical_actions(tiny_policy, tmp_path):
    save_policy(tiny_policy, tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    frames = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    a = tiny_policy.act(frames, ["push the puck"] * 4, temperature=0)
    b = loaded.act(frames, ["push the puck"] * 4, temperature=0)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert loaded.action_spec == SPEC  # statistics travel with the weights


def test_clear_errors_for_bad_inputs(tiny_policy, tmp_path):
    good = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="takes 32x32 images"):
        tiny_policy.act(np.zeros((2, 64, 64, 3), np.uint8), ["a", "b"])
    with pytest.raises(ValueError, match="expected uint8"):
        tiny_policy.act(good.astype(np.float32), ["a", "b"])
    with pytest.raises(TypeError, match="instructions: expected a list"):
        tiny_policy.act(good, "open the drawer")
    with pytest.raises(TypeError, match="instructions: expected a list"):
        tiny_policy.act(good, [1, 2])
    with pytest.raises(ValueError, match="2 frames but 1 instructions"):
        tiny_policy.act(good, ["a"])
    # Statistics that do not match the action dimension.
    save_policy(tiny_policy, tmp_path / "p")
    import json

    meta = json.loads((tmp_path / "p" / "policy.json").read_text())
    meta["action_spec"]["stats"]["q01"] = meta["action_spec"]["stats"]["q01"][:4]
    meta["action_spec"]["stats"]["q99"] = meta["action_spec"]["stats"]["q99"][:4]
    meta["action_spec"]["stats"]["mean"] = meta["action_spec"]["stats"]["mean"][:4]
    meta["action_spec"]["stats"]["std"] = meta["action_spec"]["stats"]["std"][:4]
    (tmp_path / "p" / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="statistics have dimension 4, but the action has 7"):
        load_policy(tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="policy checkpoint not found"):
        load_policy(tmp_path / "nowhere")


def test_augmentations_keep_shape_and_change_pixels():
    frames = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    generator = torch.Generator().manual_seed(0)
    shifted = random_shift_crop(frames, 4, generator)
    jittered = color_jitter(frames, 0.3, generator)
    assert shifted.shape == frames.shape == jittered.shape and shifted.dtype == torch.uint8
    assert (shifted != frames).any() and (jittered != frames).any()
    assert torch.equal(random_shift_crop(frames, 0), frames)


def test_sft_on_a_toy_dataset_lowers_loss_and_resumes(tmp_path):
    from gymnast_core.dataset import EpisodeDataset
    from gymnast_core.episode import Episode
    from gymnast_policy.sft import SFTConfig, train_sft

    spec = ActionSpec(("dx", "gripper"), (-1, -1), (1, 1), gripper_index=1, gripper_open=-1, gripper_closed=1)
    dataset = EpisodeDataset.create(tmp_path / "ds", spec)
    rng = np.random.default_rng(0)
    for i in range(6):
        # The right action is readable from the image: bright frames -> move right.
        bright = i % 2 == 0
        frames = np.full((9, 32, 32, 3), 220 if bright else 30, np.uint8)
        actions = np.tile([[0.8 if bright else -0.8, -1.0]], (8, 1)).astype(np.float32) + rng.normal(0, 0.01, (8, 2)).astype(np.float32)
        dataset.append(Episode(frames, actions, "move", True, {"source": "expert", "task": "toy"}), f"e{i}")
    dataset.compute_stats()
    config = SFTConfig(dataset=str(tmp_path / "ds"), out=str(tmp_path / "sft"), demos_per_task=0, policy=TINY,
                       steps=60, batch_size=16, lr=3e-3, checkpoint_every=30, max_minutes=0)
    train_sft(config)
    policy = load_policy(tmp_path / "sft")
    bright, dark = np.full((1, 32, 32, 3), 220, np.uint8), np.full((1, 32, 32, 3), 30, np.uint8)
    assert policy.act(bright, ["move"], 0).actions[0, 0, 0] > 0.3
    assert policy.act(dark, ["move"], 0).actions[0, 0, 0] < -0.3
    assert load_torch(tmp_path / "sft" / "train_state.pt", "SFT state")["step"] == 60
    # A log row an interrupted run wrote after its last checkpoint is written again by the resumed run, once.
    with open(tmp_path / "sft" / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"step": 90, "loss": 0.0}) + "\n")
    train_sft(config)
    assert [json.loads(line)["step"] for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()] == [30, 60]
    # A resume with other settings names them and refuses, before any weights are loaded.
    for changed, named in ((replace(config, lr=1e-2), "lr: 0.003 -> 0.01"), (replace(config, steps=80), "steps: 60 -> 80"),
                           (replace(config, policy=replace(TINY, width=64)), "policy.width: 32 -> 64"),
                           (replace(config, demos_per_task=2), "demos_per_task: 0 -> 2")):
        with pytest.raises(ConfigError, match=named):
            train_sft(changed)
