"""`gymnast eval-world-model`: open-loop fidelity on held-out episodes.

From a real frame, the model predicts k steps ahead from the episode's real actions; PSNR
and SSIM against the real frames at each k. Two baselines: copying the last real frame, and
the same model given another episode's actions (the gap says whether actions control the
dream).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gymnast_core.names import WORLD_MODEL_CHECKPOINT, WORLD_MODEL_DIR
from gymnast_core.atomic import write_json
from gymnast_core.config_checks import at_least
from gymnast_core.dataset import EpisodeDataset
from gymnast_core.video import resize_frames, save_gif
from gymnast_world_model.data import split_entries
from gymnast_world_model.dream_env import DreamConfig, DreamEnv
from gymnast_world_model.world_model import load_world_model, read_checkpoint


def psnr(pred: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per-frame PSNR in dB of uint8 [..., H, W, 3] frames."""
    mse = ((pred.astype(np.float64) - real.astype(np.float64)) ** 2).mean(axis=(-1, -2, -3))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def ssim(pred: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per-frame SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) of uint8 [N, H, W, 3] frames."""
    x = torch.from_numpy(pred).permute(0, 3, 1, 2).double()
    y = torch.from_numpy(real).permute(0, 3, 1, 2).double()
    coords = torch.arange(11, dtype=torch.double) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    window = (g[:, None] * g[None, :] / g.sum() ** 2).expand(3, 1, 11, 11)
    blur = lambda z: F.conv2d(z, window, groups=3)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).numpy()


@dataclass(frozen=True)
class EvalWorldModelConfig:
    """Score open-loop predictions of a trained world model on held-out episodes."""

    checkpoint: str = WORLD_MODEL_CHECKPOINT
    # Defaults to the dataset the checkpoint was trained on.
    dataset: str = ""
    out: str = f"{WORLD_MODEL_DIR}/eval"
    horizon: int = 20
    # Episode step the dream starts from (its one real frame); the bench's dreams restart at step 20.
    start_step: int = 0
    sampling_steps: int = 4
    # The dream's guidance scale by default, so the score is that of the dream GRPO and the judge see.
    cfg_scale: float = DreamConfig.cfg_scale
    context_window: int = 20
    # Which episodes of `dataset` are scored: 'held_out' (the checkpoint's held-out share of the data it
    # trained on) or 'all' (a dataset it never saw, e.g. to choose the CFG scale without the test episodes).
    split: str = "held_out"
    # Episodes scored (all if 0).
    max_episodes: int = 0
    batch_size: int = 32
    seed: int = 0
    threads: int = 2
    # 'auto' = CUDA when available, else CPU (the worldgym-600m dream needs a GPU).
    device: str = DreamConfig.device

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from at_least(self, {"horizon": 1, "start_step": 0, "sampling_steps": 1, "max_episodes": 0, "batch_size": 1,
                                   "threads": 1})
        if self.split not in ("held_out", "all"):
            yield "split", "must be 'held_out' or 'all'"


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of range(n) with no fixed point: every episode gets another's actions.

    Random rather than a neighbour's: held-out episodes are listed by task and source, so the next
    one is usually the same task's expert, with nearly the same actions.
    """
    if n < 2:
        raise ValueError(f"shuffled actions need at least 2 episodes, got {n}")
    while True:
        order = rng.permutation(n)
        if not (order == np.arange(n)).any():
            return order


def open_loop(env: DreamEnv, frames0: np.ndarray, actions: np.ndarray, batch_size: int) -> np.ndarray:
    """Predicted frames [N, k, H, W, 3] for real first frames [N, H, W, 3] and actions [N, k, A]."""
    out = []
    for i in range(0, len(frames0), batch_size):
        env.reset_frames(frames0[i:i + batch_size], ["-"] * len(frames0[i:i + batch_size]))
        out.append(np.stack([env.step(actions[i:i + batch_size, k]) for k in range(actions.shape[1])], axis=1))
    return np.concatenate(out)


def episode_clips(dataset: EpisodeDataset, entries: list, size: int, start: int, horizon: int,
                  max_episodes: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """Real frames [N, horizon+1, size, size, 3] and actions [N, horizon, A] from `start`, and the N entries
    they come from: those of the given episodes that last start + horizon steps."""
    chosen = entries[:max_episodes] if max_episodes else entries
    if not chosen:
        raise ValueError(f"{dataset.root}: no episodes to score")
    kept = [(e, ep) for e, ep in ((e, dataset.load(e)) for e in chosen) if ep.num_steps >= start + horizon]
    if not kept:
        raise ValueError(f"{dataset.root}: no episode to score has start_step + horizon = {start + horizon} steps")
    real = np.stack([resize_frames(ep.frames[start: start + horizon + 1], size) for _, ep in kept])
    return real, np.stack([ep.actions[start: start + horizon] for _, ep in kept]), [e for e, _ in kept]


def evaluate_world_model(config: EvalWorldModelConfig) -> dict:
    torch.set_num_threads(config.threads)
    state = read_checkpoint(config.checkpoint)
    model = load_world_model(config.checkpoint, device=config.device)
    dataset = EpisodeDataset.open(config.dataset or state["dataset"])
    if config.split not in ("held_out", "all"):
        raise ValueError(f"split must be 'held_out' or 'all', not {config.split!r}")
    if config.split == "all" and Path(dataset.root).resolve() == Path(state["dataset"]).resolve():
        raise ValueError(f"split 'all' would score {dataset.root}, the dataset {config.checkpoint} trained on; "
                         "pass another --dataset or use split 'held_out'")
    k = config.horizon
    entries = split_entries(dataset, state["holdout_fraction"])[1] if config.split == "held_out" else dataset.entries
    real, actions, scored = episode_clips(dataset, entries, model.config.image_size, config.start_step, k, config.max_episodes)
    shuffled = actions[derangement(len(actions), np.random.default_rng(config.seed))]
    env = DreamEnv(model, config.sampling_steps, config.cfg_scale, config.context_window, config.seed)
    started = time.perf_counter()
    with tqdm(total=2, desc="open-loop rollouts", unit="pass") as progress:
        dream = open_loop(env, real[:, 0], actions, config.batch_size)
        progress.update()
        dream_shuffled = open_loop(env, real[:, 0], shuffled, config.batch_size)
        progress.update()
    seconds = time.perf_counter() - started
    copy = np.repeat(real[:, :1], k, axis=1)
    target = real[:, 1:]
    rows = []
    for step in range(1, k + 1):
        j = step - 1
        rows.append({
            "k": step,
            "psnr_model": float(psnr(dream[:, j], target[:, j]).mean()),
            "psnr_copy_last": float(psnr(copy[:, j], target[:, j]).mean()),
            "psnr_shuffled": float(psnr(dream_shuffled[:, j], target[:, j]).mean()),
            "ssim_model": float(ssim(dream[:, j], target[:, j]).mean()),
            "ssim_copy_last": float(ssim(copy[:, j], target[:, j]).mean()),
            "ssim_shuffled": float(ssim(dream_shuffled[:, j], target[:, j]).mean()),
        })
    # At the last k, by task and by source (expert, noisy, random): where the margins are won or lost.
    last = {"psnr_model": psnr(dream[:, -1], target[:, -1]), "psnr_copy_last": psnr(copy[:, -1], target[:, -1]),
            "psnr_shuffled": psnr(dream_shuffled[:, -1], target[:, -1])}
    groups: dict[str, list[int]] = {}
    for field_name in ("task", "source"):
        for i, entry in enumerate(scored):
            groups.setdefault(getattr(entry, field_name), []).append(i)
    per_group = [{"group": group, "episodes": len(index), **{name: float(v[index].mean()) for name, v in last.items()}}
                 for group, index in groups.items()]
    out = Path(config.out)
    result = {"episodes": len(real), "split": config.split, "start_step": config.start_step, "horizon": k, "sampling_steps": config.sampling_steps,
              "cfg_scale": config.cfg_scale, "rollout_seconds": seconds, "trained_minutes": state["elapsed"] / 60,
              "trained_steps": state["step"], "parameters": model.num_parameters(), "per_k": rows,
              "per_group_last_k": per_group}
    write_json(out / "metrics.json", result)
    # Real | dream | dream with shuffled actions, for a few episodes.
    picks = np.linspace(0, len(real) - 1, min(4, len(real))).astype(int)
    videos = [np.concatenate([real[picks, 1:], dream[picks], dream_shuffled[picks]], axis=3)[i] for i in range(len(picks))]
    save_gif(out / "real_vs_dream.gif", [np.concatenate(videos, axis=1)], fps=5, scale=2)
    return result


def format_result(result: dict) -> str:
    lines = [f"{'k':>3} {'PSNR model':>11} {'copy-last':>10} {'shuffled':>9} {'SSIM model':>11} {'copy-last':>10} {'shuffled':>9}"]
    for row in result["per_k"]:
        lines.append(f"{row['k']:>3} {row['psnr_model']:>11.2f} {row['psnr_copy_last']:>10.2f} {row['psnr_shuffled']:>9.2f} "
                     f"{row['ssim_model']:>11.3f} {row['ssim_copy_last']:>10.3f} {row['ssim_shuffled']:>9.3f}")
    return "\n".join(lines)


def write_report(result: dict, out: Path, command: str) -> Path:
    """A markdown report of the margins the issue asks for, beside metrics.json and the GIF."""
    rows = {row["k"]: row for row in result["per_k"]}
    scored = "held-out episodes" if result["split"] == "held_out" else "episodes of a dataset it did not train on"
    lines = [
        f"# World-model fidelity (open loop, {scored})",
        "",
        f"Produced by: `{command}`",
        "",
        f"{result['episodes']} {scored} from step {result['start_step']}, {result['sampling_steps']} DDIM steps, CFG {result['cfg_scale']}, "
        f"{result['parameters'] / 1e6:.2f}M parameters trained for {result['trained_steps']} steps "
        f"({result['trained_minutes']:.1f} min on this machine).",
        "",
        "| k | PSNR model (dB) | copy-last-frame | shuffled actions | margin vs copy | margin vs shuffled | SSIM model | SSIM copy | SSIM shuffled |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in sorted(rows):
        if k in (1, 5, 10, 20) or k == max(rows):
            r = rows[k]
            lines.append(
                f"| {k} | {r['psnr_model']:.2f} | {r['psnr_copy_last']:.2f} | {r['psnr_shuffled']:.2f} | "
                f"{r['psnr_model'] - r['psnr_copy_last']:+.2f} | {r['psnr_model'] - r['psnr_shuffled']:+.2f} | "
                f"{r['ssim_model']:.3f} | {r['ssim_copy_last']:.3f} | {r['ssim_shuffled']:.3f} |")
    lines += ["", f"At k = {result['horizon']}, by task and by source:", "",
              "| episodes of | n | PSNR model (dB) | copy-last-frame | shuffled actions | margin vs copy | margin vs shuffled |",
              "|---|---|---|---|---|---|---|"]
    for g in result["per_group_last_k"]:
        lines.append(f"| {g['group']} | {g['episodes']} | {g['psnr_model']:.2f} | {g['psnr_copy_last']:.2f} | {g['psnr_shuffled']:.2f} | "
                     f"{g['psnr_model'] - g['psnr_copy_last']:+.2f} | {g['psnr_model'] - g['psnr_shuffled']:+.2f} |")
    lines += ["", "Real (left) | dreamed from the real actions (middle) | dreamed from shuffled actions (right):", "",
              "![real vs dream](real_vs_dream.gif)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(config: EvalWorldModelConfig) -> None:
    result = evaluate_world_model(config)
    print(format_result(result))
    print(json.dumps({k: v for k, v in result.items() if k not in ("per_k", "per_group_last_k")}))
    report = write_report(result, Path(config.out), "gymnast eval-world-model " + " ".join(sys.argv[2:]))
    print(f"report: {report}")
