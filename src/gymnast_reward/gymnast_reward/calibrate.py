"""`gymnast judge-eval`: the judge against ground truth, on real and on dreamed videos.

Four test sets, none seen in training:
- held-out real episodes (the world model's held-out split);
- dreamed replays of those episodes (their real actions in the world model; real labels);
- the policy's real rollouts from evaluation initial states (its near-misses);
- dreamed replays of those rollouts: what the judge scores during RL.
Accuracy, true- and false-positive rates, confusion matrices and a sheet of example frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

from gymnast_core.atomic import atomic_open, write_json
from gymnast_core.config_checks import at_least
from gymnast_core.dataset import EpisodeDataset
from gymnast_core.envs.metaworld_env import RealityConfig
from gymnast_core.protocols import Verdict
from gymnast_world_model.data import split_entries
from gymnast_world_model.dream_env import DreamConfig
from gymnast_reward.judges import JudgeConfig, make_judge
from gymnast_reward.train_judge import LabelledVideos, dreamed, load_real


# Score thresholds at which judge-eval also reports the trade-off (the judge's own is in its config).
OPERATING_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class JudgeEvalConfig:
    """Calibrate a judge against ground truth on real and dreamed videos."""

    judge: JudgeConfig = field(default_factory=JudgeConfig)
    dataset: str = "outputs/default/data"
    dream: DreamConfig = field(default_factory=DreamConfig)
    # The policy whose near-misses are tested ('' = skip those two sets).
    policy: str = "outputs/default/policy_sft"
    policy_episodes_per_task: int = 20
    policy_temperature: float = 1.0
    reality: RealityConfig = field(default_factory=RealityConfig)
    holdout_fraction: float = 0.1
    batch_size: int = 64
    out: str = "outputs/default/judge_eval"
    # Test videos: read from this folder if it holds them, else written there after gathering,
    # so several judges are compared on the same videos without re-dreaming ('' = no cache).
    videos_cache: str = ""
    threads: int = 2

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from at_least(self, {"policy_episodes_per_task": 0, "batch_size": 1, "threads": 1})


def binary_metrics(labels: np.ndarray, predicted: np.ndarray, known: np.ndarray) -> dict:
    """Accuracy, TPR, FPR and the confusion matrix over the known verdicts; unknowns counted apart."""
    y, p = labels[known].astype(bool), predicted[known].astype(bool)
    tp, fp = int((y & p).sum()), int((~y & p).sum())
    tn, fn = int((~y & ~p).sum()), int((y & ~p).sum())
    rate = lambda a, b: a / (a + b) if a + b else float("nan")  # noqa: E731
    return {"n": int(len(labels)), "positives": int(labels.sum()), "unknown": int((~known).sum()),
            "accuracy": rate(tp + tn, fp + fn), "tpr": rate(tp, fn), "fpr": rate(fp, tn),
            "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp}}


def per_instruction(labels: np.ndarray, predicted: np.ndarray, known: np.ndarray, instructions: list[str]) -> dict[str, dict]:
    """`binary_metrics` for each instruction (task): where a judge's misses concentrate."""
    instructions = np.asarray(instructions)
    return {name: binary_metrics(labels[instructions == name], predicted[instructions == name], known[instructions == name])
            for name in sorted(set(instructions.tolist()))}


def judge_videos(judge, videos: LabelledVideos, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(success, known, scores) of every video."""
    verdict = Verdict.concat([judge.judge(videos.videos[start:start + batch_size], videos.instructions[start:start + batch_size])
                              for start in range(0, len(videos.labels), batch_size)])
    return verdict.success, verdict.known, verdict.scores


def operating_points(labels: np.ndarray, scores: np.ndarray, known: np.ndarray,
                     thresholds: tuple[float, ...] = OPERATING_THRESHOLDS) -> dict[str, dict]:
    """TPR / FPR / accuracy if success were `score >= threshold`: the trade-off a stricter judge buys."""
    return {f"{t:.2f}": binary_metrics(labels, np.nan_to_num(scores) >= t, known) for t in thresholds}


SET_NAMES = ("held-out real episodes", "held-out dreamed replays", "policy real rollouts", "policy dreamed replays")


def calibration_sets(config: JudgeEvalConfig) -> dict[str, LabelledVideos]:
    cache = Path(config.videos_cache) if config.videos_cache else None
    names = SET_NAMES if config.policy else SET_NAMES[:2]
    paths = {name: cache / f"{name.replace(' ', '_')}.npz" for name in names} if cache else {}
    if paths and all(path.exists() for path in paths.values()):
        return {name: LabelledVideos.load(path) for name, path in paths.items()}
    sets = gather_calibration_sets(config)
    for name, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        sets[name].save(path)
    return sets


def gather_calibration_sets(config: JudgeEvalConfig) -> dict[str, LabelledVideos]:
    from gymnast_policy.evaluate import record_rollouts

    dataset = EpisodeDataset.open(config.dataset)
    _, held_out = split_entries(dataset, config.holdout_fraction)
    real, actions = load_real(dataset, held_out, "real")
    real_set, dream_set, policy_set, policy_dream_set = SET_NAMES
    sets = {real_set: real, dream_set: dreamed(config.dream, real, actions, "dream")}
    if config.policy:
        rollouts = record_rollouts(config.policy, config.reality, Path(config.out) / "policy_rollouts" / Path(config.policy).name,
                                   "eval", config.policy_episodes_per_task, config.policy_temperature)
        policy_real, policy_actions = load_real(rollouts, rollouts.entries, "policy")
        sets[policy_set] = policy_real
        sets[policy_dream_set] = dreamed(config.dream, policy_real, policy_actions, "policy-dream")
    return sets


def example_sheet(path: Path, examples: list[tuple[np.ndarray, str]], scale: int = 2) -> None:
    """Last frames with a caption each, in one row per test set."""
    tiles = []
    for frame, caption in examples:
        image = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
        tile = Image.new("RGB", (image.width, image.height + 24), "white")
        tile.paste(image, (0, 24))
        ImageDraw.Draw(tile).multiline_text((2, 0), caption, fill="black", spacing=1)
        tiles.append(tile)
    columns = 6
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * tiles[0].width, rows * tiles[0].height), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * tile.width, (i // columns) * tile.height))
    with atomic_open(path, "wb") as handle:
        sheet.save(handle, format="PNG")


def evaluate_judge(config: JudgeEvalConfig) -> dict:
    import torch

    torch.set_num_threads(config.threads)
    judge = make_judge(config.judge)
    results, examples = {}, []
    for name, videos in calibration_sets(config).items():
        started = time.monotonic()
        success, known, scores = judge_videos(judge, videos, config.batch_size)
        results[name] = {**binary_metrics(videos.labels, success, known), "seconds": time.monotonic() - started,
                         "operating_points": operating_points(videos.labels, scores, known),
                         "per_task": per_instruction(videos.labels, success, known, videos.instructions)}
        rng = np.random.default_rng(0)
        for i in rng.choice(len(videos.labels), size=min(6, len(videos.labels)), replace=False):
            truth = "success" if videos.labels[i] else "failure"
            said = "?" if not known[i] else ("success" if success[i] else "failure")
            examples.append((videos.videos[i, -1], f"{videos.kinds[i]}\ntrue {truth} / judge {said}"))
    out = Path(config.out)
    summary = {"judge": config.judge.backend, "judge_path": config.judge.path if config.judge.backend == "learned" else "",
               "sets": results}
    write_json(out / "metrics.json", summary)
    example_sheet(out / "examples.png", examples)
    return summary


def format_results(summary: dict) -> str:
    lines = ["| test set | n | successes | accuracy | true-positive rate | false-positive rate | unknown | "
             "confusion (TN FP / FN TP) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in summary["sets"].items():
        c = r["confusion"]
        lines.append(f"| {name} | {r['n']} | {r['positives']} | {r['accuracy']:.3f} | {r['tpr']:.3f} | {r['fpr']:.3f} | "
                     f"{r['unknown']} | {c['tn']} {c['fp']} / {c['fn']} {c['tp']} |")
    thresholds = list(next(iter(summary["sets"].values()))["operating_points"])
    lines += ["", "Score threshold trade-off (TPR / FPR / accuracy if success were score >= threshold):", "",
              "| test set | " + " | ".join(f">= {t}" for t in thresholds) + " |", "|---|" + "---|" * len(thresholds)]
    for name, r in summary["sets"].items():
        points = r["operating_points"]
        lines.append(f"| {name} | " + " | ".join(
            f"{points[t]['tpr']:.2f} / {points[t]['fpr']:.2f} / {points[t]['accuracy']:.2f}" for t in thresholds) + " |")
    lines += ["", "Per task (successes, then misses: FN = successes called failures, FP = failures called successes):", "",
              "| test set | task | n | successes | FN | FP | accuracy |", "|---|---|---|---|---|---|---|"]
    for name, r in summary["sets"].items():
        for task, m in r["per_task"].items():
            c = m["confusion"]
            lines.append(f"| {name} | {task} | {m['n']} | {m['positives']} | {c['fn']} | {c['fp']} | {m['accuracy']:.3f} |")
    return "\n".join(lines)


def main(config: JudgeEvalConfig) -> None:
    summary = evaluate_judge(config)
    print(f"judge: {summary['judge']} {summary['judge_path']}")
    print(format_results(summary))
    print(f"results: {Path(config.out) / 'metrics.json'}, examples: {Path(config.out) / 'examples.png'}")
