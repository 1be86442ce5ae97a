import shutil

import numpy as np
import pytest
import torch

from gymnast_core.action_spec import ActionSpec, NormStats
from gymnast_core.dataset import EpisodeDataset
from gymnast_core.episode import Episode
from gymnast_core.task import Task
from gymnast_world_model.codec import PixelUnshuffleCodec, SD3VAECodec
from gymnast_world_model.dream_env import DreamConfig, DreamEnv
from gymnast_world_model.data import Clips, ClipSampler, split_entries
from gymnast_world_model.dit import SpatioTemporalDiT
from gymnast_world_model.evaluate import EvalWorldModelConfig, evaluate_world_model, psnr, ssim
from gymnast_world_model.train import TrainWorldModelConfig, train_world_model
from gymnast_world_model.world_model import (
    CpuDefaultConfig,
    TinyConfig,
    WorldModel,
    decode_config,
    encode_config,
    load_world_model,
    read_checkpoint,
    resolve_device,
)

SPEC = ActionSpec(("dx", "dy", "dz", "gripper"), (-1,) * 4, (1,) * 4, gripper_index=3, gripper_open=-1, gripper_closed=1)


def moving_square_dataset(root, episodes=12, steps=12, size=32):
    """A square that moves by the action: a world with known, action-controlled dynamics."""
    rng = np.random.default_rng(0)
    dataset = EpisodeDataset.create(root, SPEC)
    for e in range(episodes):
        pos = rng.uniform(8, size - 8, 2)
        frames, actions = [], []
        for t in range(steps + 1):
            frame = np.full((size, size, 3), 30, np.uint8)
            x, y = np.clip(pos, 2, size - 6).astype(int)
            frame[y:y + 5, x:x + 5] = (250, 200, 40)
            frames.append(frame)
            if t < steps:
                action = rng.uniform(-1, 1, 4).astype(np.float32)
                actions.append(action)
                pos = pos + 2.5 * action[:2]
        dataset.append(Episode(np.stack(frames), np.stack(actions), "move the square", True, {"source": "toy"}), f"ep{e:03d}")
    dataset.compute_stats()
    return dataset


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    return moving_square_dataset(tmp_path_factory.mktemp("toy") / "ds")


def test_pixel_unshuffle_codec_is_lossless_and_checks_sizes():
    codec = PixelUnshuffleCodec(32, 2)
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    latents = codec.encode(frames)
    assert latents.shape == (3, 12, 16, 16)
    np.testing.assert_array_equal(codec.decode(latents).numpy(), frames)
    with pytest.raises(ValueError, match="expected \\[N, 32, 32, 3\\]"):
        codec.encode(frames[:, :16])


def test_sd3_vae_codec_loads_from_a_locally_saved_tiny_config(tmp_path):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 8, 8, 8),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=1, norm_num_groups=4, scaling_factor=1.5305, shift_factor=0.0609)
    vae.save_pretrained(tmp_path / "vae")
    codec = SD3VAECodec(tmp_path / "vae", image_size=64)
    assert codec.latent_channels == 16 and codec.downsample == 8 and codec.latent_size == 8
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    latents = codec.encode(frames)
    assert latents.shape == (2, 16, 8, 8)
    assert codec.decode(latents).shape == (2, 64, 64, 3)
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        SD3VAECodec(tmp_path / "nowhere")

    # Inside a world model the VAE is a frozen submodule: `.to()` moves it with the dynamics
    # (here to float64, as `.to("cuda")` would move it to the GPU), training leaves it in eval
    # mode, and checkpoints hold only the dynamics.
    spec = SPEC.with_stats(NormStats.from_actions(np.zeros((4, 4))))
    model = WorldModel(TinyConfig(image_size=64, codec="sd3-vae", codec_path=str(tmp_path / "vae")), spec)
    model.to(torch.float64).train()
    assert not model.codec.training and model.dynamics.training
    assert all(p.dtype == torch.float64 for p in model.codec.parameters())
    assert model.codec.encode(frames).shape == (2, 16, 8, 8)
    assert model.num_parameters() == sum(p.numel() for p in model.dynamics.parameters())


@pytest.mark.parametrize("trunk,self_forcing,action_history", [
    ("conv-unet", 0.0, 0), ("conv-unet", 0.25, 0), ("conv-unet", 0.5, 2), ("dit", 0.0, 0)])
def test_tiny_config_trains_and_loss_decreases(toy_dataset, trunk, self_forcing, action_history):
    torch.manual_seed(0)
    model = WorldModel(TinyConfig(trunk=trunk, patch=4, width=32, depth=1, heads=2, clip_length=4,
                                  self_forcing=self_forcing, action_history=action_history),
                       toy_dataset.action_spec)
    sampler = ClipSampler(toy_dataset, toy_dataset.entries, model.clip_length, 32, model.clip_padding)
    rng = np.random.default_rng(0)
    fixed = sampler.sample(16, np.random.default_rng(1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def fixed_loss():
        torch.manual_seed(0)
        with torch.no_grad():
            return model.loss(fixed).item()

    before = fixed_loss()
    for _ in range(40):
        loss = model.loss(sampler.sample(16, rng))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fixed_loss() < 0.8 * before


def test_clips_give_no_action_into_the_copies_of_the_first_frame(tmp_path):
    dataset = moving_square_dataset(tmp_path / "one", episodes=1, steps=12)
    episode = dataset.load(dataset.entries[0])
    actions = dataset.action_spec.normalize(episode.actions)
    clips = ClipSampler(dataset, dataset.entries, 5, 32, max_padding=3).sample(64, np.random.default_rng(0))
    assert clips.padding.max() == 3
    for clip_actions, frames, padding in zip(clips.actions, clips.frames, clips.padding):
        # As in a rollout, whose action history starts at zeros: nothing moved the arm into those frames.
        np.testing.assert_array_equal(clip_actions[:padding], 0.0)
        start = next(i for i, f in enumerate(episode.frames) if (f == frames[padding]).all())
        np.testing.assert_array_equal(clip_actions[padding:], actions[start:start + 4 - padding])


def test_rollout_conditions_on_the_actions_into_its_last_frames(toy_dataset, monkeypatch):
    model = WorldModel(TinyConfig(action_history=2), toy_dataset.action_spec)
    first = torch.zeros(2, model.codec.latent_channels, model.codec.latent_size, model.codec.latent_size)
    state = model.dynamics.start(first)
    seen = []
    action_features = model.dynamics.action_features
    monkeypatch.setattr(model.dynamics, "action_features", lambda actions: (
        seen.append(actions.clone()), action_features(actions))[1])
    steps = [torch.full((2, 4), value) for value in (0.1, 0.2, 0.3)]
    for action in steps:
        model.dynamics.next_latent(state, action, steps=1, cfg_scale=1.0)
    zero = torch.zeros(2, 4)
    expected = [[zero, zero, steps[0]], [zero, steps[0], steps[1]], [steps[0], steps[1], steps[2]]]
    for actions, window in zip(seen, expected):
        torch.testing.assert_close(actions, torch.stack(window, dim=1))
    with pytest.raises(ValueError, match="action_history must be in \\[0, context - 1\\]"):
        WorldModel(TinyConfig(action_history=3), toy_dataset.action_spec)
    with pytest.raises(ValueError, match="conv-unet"):
        WorldModel(TinyConfig(trunk="dit", action_history=1), toy_dataset.action_spec)


def test_checkpoints_from_before_the_action_history_load_without_one():
    saved = encode_config(CpuDefaultConfig())
    del saved["action_history"]  # what checkpoints written before the option hold
    assert decode_config(saved).action_history == 0
    assert CpuDefaultConfig().action_history == 2


def test_self_forcing_trains_on_clips_one_frame_longer(toy_dataset):
    plain = WorldModel(TinyConfig(), toy_dataset.action_spec)
    forced = WorldModel(TinyConfig(self_forcing=0.5), toy_dataset.action_spec)
    assert (plain.clip_length, forced.clip_length) == (plain.config.context + 1, plain.config.context + 2)
    dim = toy_dataset.action_spec.dim
    clips = Clips(np.zeros((2, plain.clip_length, 32, 32, 3), np.uint8), np.zeros((2, plain.clip_length - 1, dim), np.float32),
                  np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="clips of 5 frames"):
        forced.loss(clips)


def test_self_forced_clips_also_start_where_a_rollout_does(toy_dataset, monkeypatch):
    # A conv rollout's first step sees only copies of the first frame: with self-forcing's extra
    # frame the clips must be able to start one frame earlier to train that step.
    forced = WorldModel(TinyConfig(self_forcing=1.0), toy_dataset.action_spec)
    assert forced.clip_padding == forced.config.context
    clips = ClipSampler(toy_dataset, toy_dataset.entries, forced.clip_length, 32, forced.clip_padding).sample(
        256, np.random.default_rng(0))
    first = {key: toy_dataset.load(e).frames[0] for key, e in enumerate(toy_dataset.entries)}
    assert clips.padding.max() == forced.config.context
    for frames, padding in zip(clips.frames, clips.padding):
        if padding:
            assert any((frames[: padding + 1] == f).all() for f in first.values())
    # Only the clips whose last context frame is a dreamed one (not the episode's first) are self-forced.
    dreamed_rows = []
    sample_next = forced.dynamics.sample_next
    monkeypatch.setattr(forced.dynamics, "sample_next", lambda context, *a, **k: (
        dreamed_rows.append(len(context)), sample_next(context, *a, **k))[1])
    latents = torch.zeros(4, forced.clip_length, forced.codec.latent_channels, forced.codec.latent_size, forced.codec.latent_size)
    actions = torch.zeros(4, forced.clip_length - 1, toy_dataset.action_spec.dim)
    forced.dynamics.loss(latents, actions, torch.zeros(4, dtype=torch.bool), padding=torch.tensor([0, 2, 3, 3]))
    assert dreamed_rows == [2]


def test_checkpoints_with_a_removed_option_load_only_at_its_one_remaining_value():
    saved = encode_config(TinyConfig())
    assert decode_config({**saved, "self_forcing_frames": 1}) == TinyConfig()
    with pytest.raises(ValueError, match="self_forcing_frames=2, an option since removed"):
        decode_config({**saved, "self_forcing_frames": 2})
    assert decode_config({**saved, "anchor": False}) == TinyConfig()
    with pytest.raises(ValueError, match="anchor=True, an option since removed"):
        decode_config({**saved, "anchor": True})
    with pytest.raises(ValueError, match="predicts 'flow'"):
        decode_config({**saved, "prediction": "flow"})


def test_interrupted_training_resumes_to_the_same_weights(toy_dataset, tmp_path, monkeypatch):
    def config(out):
        return TrainWorldModelConfig(dataset=str(toy_dataset.root), out=str(out), model=TinyConfig(), steps=6,
                                     batch_size=4, val_every=3, checkpoint_every=3, max_minutes=0, bf16=False)

    path = train_world_model(config(tmp_path / "straight"))
    straight = read_checkpoint(path)
    assert straight["step"] == 6

    from gymnast_world_model import data

    original, calls = data.ClipSampler.sample, {"n": 0}

    def crash_on_fifth_batch(self, *args):
        calls["n"] += 1
        if calls["n"] == 2 + 5:  # two fixed validation batches are drawn first
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(data.ClipSampler, "sample", crash_on_fifth_batch)
    with pytest.raises(KeyboardInterrupt):
        train_world_model(config(tmp_path / "interrupted"))
    assert read_checkpoint(tmp_path / "interrupted" / "checkpoint.pt")["step"] == 3
    monkeypatch.setattr(data.ClipSampler, "sample", original)
    resumed = read_checkpoint(train_world_model(config(tmp_path / "interrupted")))
    assert resumed["step"] == 6
    for key in straight["model"]:
        torch.testing.assert_close(straight["model"][key], resumed["model"][key])
        torch.testing.assert_close(straight["ema"][key], resumed["ema"][key])


def test_eval_writes_metrics_and_gif(toy_dataset, tmp_path):
    path = train_world_model(TrainWorldModelConfig(dataset=str(toy_dataset.root), out=str(tmp_path / "wm"), model=TinyConfig(),
                                                   steps=2, batch_size=4, max_minutes=0, holdout_fraction=0.3))
    model = load_world_model(path)
    assert model.num_parameters() > 0
    result = evaluate_world_model(EvalWorldModelConfig(checkpoint=str(path), out=str(tmp_path / "eval"), horizon=5))
    assert [row["k"] for row in result["per_k"]] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(row["psnr_model"]) for row in result["per_k"])
    assert (tmp_path / "eval" / "real_vs_dream.gif").stat().st_size > 0
    # The last k split by task and by source: each split covers every episode once and averages back to the whole.
    _, held_out = split_entries(toy_dataset, 0.3)
    groups = {g["group"]: g for g in result["per_group_last_k"]}
    for split in ({e.task for e in held_out}, {e.source for e in held_out}):
        assert sum(groups[name]["episodes"] for name in split) == result["episodes"]
        for score in ("psnr_model", "psnr_copy_last", "psnr_shuffled"):
            pooled = sum(groups[name][score] * groups[name]["episodes"] for name in split) / result["episodes"]
            assert pooled == pytest.approx(result["per_k"][-1][score])

    # A later start scores the dream against the frames after that step: copy-last at k = 1 is
    # the held-out episodes' frame 7 against frame 8.
    later = evaluate_world_model(EvalWorldModelConfig(checkpoint=str(path), out=str(tmp_path / "eval7"), horizon=5, start_step=7))
    frames = np.stack([toy_dataset.load(e).frames for e in held_out])
    assert later["per_k"][0]["psnr_copy_last"] == pytest.approx(float(psnr(frames[:, 7], frames[:, 8]).mean()))
    with pytest.raises(ValueError, match="start_step \\+ horizon = 13"):
        evaluate_world_model(EvalWorldModelConfig(checkpoint=str(path), out=str(tmp_path / "eval8"), horizon=5, start_step=8))

    # split 'all' scores every episode of a dataset the model did not train on, never its own.
    with pytest.raises(ValueError, match="trained on"):
        evaluate_world_model(EvalWorldModelConfig(checkpoint=str(path), out=str(tmp_path / "all"), horizon=5, split="all"))
    other = shutil.copytree(toy_dataset.root, tmp_path / "other_data")
    every = evaluate_world_model(EvalWorldModelConfig(checkpoint=str(path), dataset=str(other), out=str(tmp_path / "all"),
                                                      horizon=5, split="all"))
    assert every["episodes"] == len(toy_dataset.entries) > len(held_out) == result["episodes"]


def test_metrics_on_known_images():
    a = np.zeros((1, 32, 32, 3), np.uint8)
    b = a.copy()
    b[..., 0] = 255  # one channel of three off by the full range: MSE = 255^2 / 3
    assert psnr(a, b)[0] == pytest.approx(10 * np.log10(3))
    assert ssim(a, a)[0] == pytest.approx(1.0)
    assert ssim(a, np.full_like(a, 255))[0] < 0.01


def test_cached_and_uncached_sampling_agree_for_the_same_noise():
    torch.manual_seed(0)
    dit = SpatioTemporalDiT(12, 16, 4, patch=4, width=32, depth=2, heads=2)
    for p in dit.parameters():  # leave the adaLN-Zero identity so the test is not trivial
        if not p.any():
            p.data.normal_(0, 0.05)
    dit.eval()
    first, actions = torch.randn(2, 12, 16, 16), torch.randn(5, 2, 4)
    results = []
    for cached in (True, False):
        dit.use_kv_cache = cached
        generator = torch.Generator().manual_seed(1)
        state = dit.start(first, window=8, generator=generator)
        results.append(torch.stack([dit.next_latent(state, a, 3, 2.0, generator) for a in actions]))
    torch.testing.assert_close(results[0], results[1], atol=1e-5, rtol=1e-4)


def test_dream_env_batches_and_validates(toy_dataset, tmp_path):
    model = WorldModel(TinyConfig(), toy_dataset.action_spec)
    env = DreamEnv(model, sampling_steps=2)
    frame = toy_dataset[0].frames[0]
    big = np.asarray(np.kron(frame, np.ones((2, 2, 1))), np.uint8)  # any size is resized
    frames = env.reset([Task("move the square", big), Task("move the square", frame)])
    assert frames.shape == (2, 32, 32, 3)
    out = env.step(np.zeros((2, 4), np.float32))
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="expected shape \\(2, 4\\)"):
        env.step(np.zeros((2, 7), np.float32))
    with pytest.raises(ValueError, match="no initial_frame"):
        env.reset([Task("x")])


def test_checkpoint_errors_are_clear(toy_dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_world_model(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read the world-model checkpoint"):
        load_world_model(tmp_path / "bad.pt")
    path = train_world_model(TrainWorldModelConfig(dataset=str(toy_dataset.root), out=str(tmp_path / "wm"), model=TinyConfig(),
                                                   steps=1, batch_size=2, max_minutes=0))
    state = torch.load(path)
    state["config"]["channels"] = [16, 32]
    torch.save(state, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="do not match the saved config"):
        load_world_model(tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match=r"model.channels: \[8, 16\] -> \[16, 32\]"):
        train_world_model(TrainWorldModelConfig(dataset=str(toy_dataset.root), out=str(tmp_path / "wm"),
                                                model=TinyConfig(channels=(16, 32)), steps=2, max_minutes=0))


def test_device_names_resolve_or_fail_clearly(toy_dataset, tmp_path):
    path = train_world_model(TrainWorldModelConfig(dataset=str(toy_dataset.root), out=str(tmp_path / "wm"), model=TinyConfig(),
                                                   steps=1, batch_size=2, max_minutes=0))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert next(DreamConfig(checkpoint=str(path)).make_env().model.dynamics.parameters()).device.type == expected
    assert next(load_world_model(path, device="cpu").dynamics.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="'gpu0': not a torch device name"):
        load_world_model(path, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            DreamConfig(checkpoint=str(path), device="cuda").make_env()


def test_world_model_needs_normalisation_statistics():
    with pytest.raises(ValueError, match="normalisation statistics"):
        WorldModel(TinyConfig(), SPEC)
    spec = SPEC.with_stats(NormStats.from_actions(np.zeros((4, 4))))
    with pytest.raises(ValueError, match="expected dimension 4"):
        WorldModel(TinyConfig(), spec).normalize_actions(np.zeros((2, 7)))
