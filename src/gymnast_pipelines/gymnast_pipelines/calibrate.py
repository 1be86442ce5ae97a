"""`gymnast judge-eval`: any judge against ground truth, per task and per source, on fresh videos.

The test episodes are gathered for the evaluation from 'eval'-split initial states in their own
seed block, so no dataset, RL task, validation or benchmark evaluation shares one. Per task:
- real episodes from every source a judge meets: the scripted expert, the noisy expert at
  several noise scales, the expert stopped partway (the hand halts short of the goal) and the
  current policy's own rollouts (its near-misses);
- the same episodes replayed in the dream (their real actions from the real first frame;
  labelled with the real outcome): what the judge scores during RL;
- jump-to-goal videos, failures by construction: a real success's first frame held, then only
  its last frames, so a judge that reads only the end of a video calls them successes.
Every figure comes per task and per source with its binomial standard error; a pooled figure
is printed only below the per-task rows it pools.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

from gymnast_core.atomic import atomic_open, write_json
from gymnast_core.collect import EpisodeJob, collect_jobs
from gymnast_core.config_checks import at_least
from gymnast_core.envs.metaworld_env import RealityConfig, instruction_for
from gymnast_core.names import JUDGE_TEST_SEEDS, OUTPUTS, SFT_POLICY
from gymnast_core.protocols import Judge, Verdict
from gymnast_world_model.dream_env import DreamConfig
from gymnast_policy.evaluate import standard_error
from gymnast_reward.judges import JudgeConfig, make_judge
from gymnast_pipelines.train_judge import JUMP_TO_GOAL as JUMP, LabelledVideos, dreamed, jump_cut_videos, load_real

# Score thresholds at which judge-eval also reports the trade-off (the judge's own is in its config).
OPERATING_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
# Initial states between the test sources of one judge-eval.
SOURCE_STRIDE = 10_000
REAL, DREAMED = "real", "dreamed replays"
POOLED = "all tasks"


@dataclass(frozen=True)
class JudgeEvalConfig:
    """Calibrate a judge against ground truth, per task and per source, on fresh real and dreamed videos."""

    judge: JudgeConfig = field(default_factory=JudgeConfig)
    reality: RealityConfig = field(default_factory=RealityConfig)
    # The world model the real test episodes are replayed in ('' checkpoint = no dreamed set).
    dream: DreamConfig = field(default_factory=DreamConfig)
    # Episodes per task of each real source.
    expert: int = 12
    noisy: int = 12  # per noise scale
    noise_scales: tuple[float, ...] = (0.5, 1.0, 1.5)
    stopped: int = 12
    # The policy whose own rollouts are tested ('' = none), sampled at this temperature.
    policy: str = SFT_POLICY
    policy_episodes_per_task: int = 16
    policy_temperature: float = 1.0
    # Jump-to-goal videos per task (from its real successes), and the goal frames each keeps.
    jump_cuts: int = 12
    jump_goal_frames: int = 4
    # Index of the first initial state used: another value draws a fresh test set.
    first_state: int = 0
    out: str = f"{OUTPUTS}/judge_eval"
    # Test videos: read from this folder if it holds them, else written there after gathering,
    # so several judges are compared on the same videos without re-dreaming ('' = no cache).
    videos_cache: str = ""
    # Test sets gathered before (the `videos_cache` folders of other `first_state`s) scored together
    # with this one: one larger fresh test set, per task as before.
    pool_with: tuple[str, ...] = ()
    batch_size: int = 64
    workers: int = 2
    threads: int = 2

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from at_least(self, {"expert": 0, "noisy": 0, "stopped": 0, "policy_episodes_per_task": 0, "jump_cuts": 0,
                                   "jump_goal_frames": 1, "first_state": 0, "batch_size": 1, "workers": 1, "threads": 1})
        if any(scale <= 0 for scale in self.noise_scales):
            yield "noise_scales", "every noise scale must be > 0"
        if self.first_state + max(self.expert, self.noisy, self.stopped, self.policy_episodes_per_task) > SOURCE_STRIDE:
            yield "first_state", f"the test set must fit in the {SOURCE_STRIDE} states of each source's block"


def binary_metrics(labels: np.ndarray, predicted: np.ndarray, known: np.ndarray) -> dict:
    """Accuracy, TPR, FPR with binomial standard errors, and the confusion matrix, over the known
    verdicts; unknowns counted apart. A rate with nothing to count is NaN."""
    y, p = labels[known].astype(bool), predicted[known].astype(bool)
    tp, fp = int((y & p).sum()), int((~y & p).sum())
    tn, fn = int((~y & ~p).sum()), int((y & ~p).sum())
    rates = {"accuracy": (tp + tn, fp + fn), "tpr": (tp, fn), "fpr": (fp, tn)}
    metrics = {"n": int(len(labels)), "positives": int(labels.sum()), "unknown": int((~known).sum())}
    for name, (hits, misses) in rates.items():
        value = hits / (hits + misses) if hits + misses else float("nan")
        metrics |= {name: value, f"{name}_se": standard_error(value, hits + misses)}
    return metrics | {"confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp}}


def metrics_by(keys: list[str], labels: np.ndarray, predicted: np.ndarray, known: np.ndarray) -> dict[str, dict]:
    """`binary_metrics` for each key (task, source): where a judge's misses concentrate."""
    keys = np.asarray(keys)
    return {key: binary_metrics(labels[keys == key], predicted[keys == key], known[keys == key])
            for key in dict.fromkeys(keys.tolist())}


def judge_videos(judge: Judge, videos: LabelledVideos, batch_size: int) -> Verdict:
    return Verdict.concat([judge.judge(videos.videos[start:start + batch_size], videos.instructions[start:start + batch_size])
                           for start in range(0, len(videos.labels), batch_size)])


def operating_points(labels: np.ndarray, scores: np.ndarray, known: np.ndarray,
                     thresholds: tuple[float, ...] = OPERATING_THRESHOLDS) -> dict[str, dict]:
    """TPR / FPR / accuracy if success were `score >= threshold`: the trade-off a stricter judge buys."""
    return {f"{t:.2f}": binary_metrics(labels, np.nan_to_num(scores) >= t, known) for t in thresholds}


def scripted_sources(config: JudgeEvalConfig) -> list[tuple[str, int, tuple[float, float]]]:
    """(name, episodes per task, noise range) of each scripted source; the i-th draws from block i."""
    sources = [("expert", config.expert, (0.0, 0.0)), ("stopped", config.stopped, (0.0, 0.0))]
    return sources + [(f"noisy-{scale:g}", config.noisy, (scale, scale)) for scale in config.noise_scales]


def judge_test_jobs(config: JudgeEvalConfig) -> list[EpisodeJob]:
    """The real test episodes of the scripted sources, each source in its own block of 'eval' states."""
    jobs = []
    for block, (name, count, noise) in enumerate(scripted_sources(config)):
        kind = name.split("-")[0]
        for task in config.reality.tasks:
            for i in range(config.first_state, config.first_state + count):
                jobs.append(EpisodeJob(f"{task}/{name}/{i:05d}", task, kind, JUDGE_TEST_SEEDS + block * SOURCE_STRIDE + i,
                                       split="eval", noise_std=noise))
    return jobs


def gather_test_sets(config: JudgeEvalConfig) -> dict[str, LabelledVideos]:
    """Real episodes of every source, their dreamed replays and the jump-to-goal videos."""
    from gymnast_policy.evaluate import record_rollouts, rollout_key

    out = Path(config.out)
    jobs = judge_test_jobs(config)
    scripted = collect_jobs(str(out / "test_episodes"), config.reality, jobs, config.workers)
    by_key = {entry.key: entry for entry in scripted.entries}
    parts = []
    for source in dict.fromkeys(job.key.split("/")[1] for job in jobs):
        entries = [by_key[job.key] for job in jobs if job.key.split("/")[1] == source]
        parts.append(load_real(scripted, entries, source))
    if config.policy and config.policy_episodes_per_task:
        # The policy's block follows the scripted sources' blocks.
        start = JUDGE_TEST_SEEDS + len(scripted_sources(config)) * SOURCE_STRIDE + config.first_state
        rollouts = record_rollouts(config.policy, config.reality, out / "policy_rollouts" / Path(config.policy).name, "eval",
                                   config.policy_episodes_per_task, config.policy_temperature, start=start)
        keys = {rollout_key(task, "eval", i) for task in config.reality.tasks for i in range(start, start + config.policy_episodes_per_task)}
        parts.append(load_real(rollouts, [e for e in rollouts.entries if e.key in keys], "policy"))
    real = LabelledVideos.concat([videos for videos, _ in parts])
    sets = {REAL: real}
    if config.dream.checkpoint:
        sets[DREAMED] = dreamed(config.dream, real, np.concatenate([actions for _, actions in parts]))
    instructions = np.array(real.instructions)
    pick = np.concatenate([np.flatnonzero(real.labels & (instructions == instruction_for(task)))[:config.jump_cuts]
                           for task in config.reality.tasks])
    if len(pick):
        sets[JUMP] = jump_cut_videos(real.subset(pick), config.jump_goal_frames)
    return sets


def cached_test_sets(folder: Path) -> dict[str, LabelledVideos]:
    return {name: LabelledVideos.load(folder / f"{name}.npz") for name in (REAL, DREAMED, JUMP) if (folder / f"{name}.npz").exists()}


def judge_test_sets(config: JudgeEvalConfig) -> dict[str, LabelledVideos]:
    cache = Path(config.videos_cache) if config.videos_cache else None
    if cache and (cache / f"{REAL}.npz").exists():
        sets = cached_test_sets(cache)
    else:
        sets = gather_test_sets(config)
        if cache:
            cache.mkdir(parents=True, exist_ok=True)
            for name, videos in sets.items():
                videos.save(cache / f"{name}.npz")
    for folder in map(Path, config.pool_with):
        if not (folder / f"{REAL}.npz").exists():
            raise FileNotFoundError(f"pool_with: {folder} holds no test set ({REAL}.npz); gather it with "
                                    "`gymnast judge-eval --first_state N --videos_cache` first")
        other = cached_test_sets(folder)
        sets = {name: LabelledVideos.concat([videos, other[name]]) if name in other else videos for name, videos in sets.items()}
    return sets


def tasks_of(instructions: list[str], tasks: tuple[str, ...]) -> list[str]:
    """The task name of each instruction (the instruction itself where no task has it)."""
    by_instruction = {instruction_for(task): task for task in tasks}
    return [by_instruction.get(instruction, instruction) for instruction in instructions]


def score_set(videos: LabelledVideos, verdict: Verdict, tasks: list[str]) -> dict:
    """Per task, per task and source, then pooled; and per task, the score-threshold trade-off."""
    labels, success, known, scores = videos.labels, verdict.success, verdict.known, verdict.scores
    of_task = {task: np.array(tasks) == task for task in dict.fromkeys(tasks)}
    kinds = np.array(videos.kinds)
    return {"per_task": metrics_by(tasks, labels, success, known),
            "per_source": {task: metrics_by(kinds[m].tolist(), labels[m], success[m], known[m]) for task, m in of_task.items()},
            "pooled": binary_metrics(labels, success, known),
            "operating_points": {task: operating_points(labels[m], scores[m], known[m]) for task, m in of_task.items()}}


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


def evaluate_judge(config: JudgeEvalConfig, judge: Judge | None = None) -> dict:
    """Score `judge` (by default the one `config.judge` names) on the test sets; writes metrics.json and examples.png."""
    import torch

    torch.set_num_threads(config.threads)
    judge = judge or make_judge(config.judge)
    results, examples = {}, []
    for name, videos in judge_test_sets(config).items():
        started = time.monotonic()
        verdict = judge_videos(judge, videos, config.batch_size)
        results[name] = {**score_set(videos, verdict, tasks_of(videos.instructions, config.reality.tasks)),
                         "seconds": time.monotonic() - started}
        rng = np.random.default_rng(0)
        for i in rng.choice(len(videos.labels), size=min(6, len(videos.labels)), replace=False):
            truth = "success" if videos.labels[i] else "failure"
            said = "?" if not verdict.known[i] else ("success" if verdict.success[i] else "failure")
            examples.append((videos.videos[i, -1], f"{name}: {videos.kinds[i]}\ntrue {truth} / judge {said}"))
    out = Path(config.out)
    summary = {"judge": judge.name, "judge_path": config.judge.path if judge.name == "learned" else "", "sets": results}
    write_json(out / "metrics.json", summary)
    example_sheet(out / "examples.png", examples)
    return summary


def _rate(m: dict, key: str) -> str:
    c = m["confusion"]
    hits, total = (c["tp"], c["tp"] + c["fn"]) if key == "tpr" else (c["fp"], c["fp"] + c["tn"])
    return f"{m[key]:.2f} +- {m[key + '_se']:.2f} ({hits}/{total})" if total else "-"


def _row(label: str, m: dict) -> str:
    accuracy = f"{m['accuracy']:.2f}" if m["n"] > m["unknown"] else "-"
    return f"| {label} | {m['n']} | {m['positives']} | {_rate(m, 'tpr')} | {_rate(m, 'fpr')} | {accuracy} | {m['unknown']} |"


def _counts(m: dict) -> str:
    c = m["confusion"]
    return f"{c['tp']}/{c['tp'] + c['fn']}, {c['fp']}/{c['fp'] + c['tn']}" + (f" ({m['unknown']} unknown)" if m["unknown"] else "")


HEADER = ["| {} | n | successes | TPR | FPR | accuracy | unknown |", "|---|---|---|---|---|---|---|"]


def format_results(summary: dict) -> str:
    """Markdown: per task for each set (the pooled row last), per task and source, and the threshold trade-off."""
    lines = []
    for name, r in summary["sets"].items():
        lines += [f"**{name}** (TPR: successes called success; FPR: failures called success; +- binomial SE)", "",
                  HEADER[0].format("task"), HEADER[1]]
        lines += [_row(task, m) for task, m in r["per_task"].items()] + [_row(f"*{POOLED}*", r["pooled"]), ""]
    for name, r in summary["sets"].items():
        sources = list(dict.fromkeys(source for per_task in r["per_source"].values() for source in per_task))
        lines += [f"**{name}** per source: successes called success, then failures called success", "",
                  "| task | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
        for task, per_task in r["per_source"].items():
            cells = [_counts(per_task[source]) if source in per_task else "" for source in sources]
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        lines.append("")
    sets = [name for name in summary["sets"] if name != JUMP]
    thresholds = list(next(iter(summary["sets"][sets[0]]["operating_points"].values())))
    lines += ["Score threshold trade-off (TPR / FPR if success were score >= threshold):", "",
              "| test set / task | " + " | ".join(f">= {t}" for t in thresholds) + " |", "|---|" + "---|" * len(thresholds)]
    for name in sets:
        for task, points in summary["sets"][name]["operating_points"].items():
            lines.append(f"| {name} / {task} | " + " | ".join(f"{points[t]['tpr']:.2f} / {points[t]['fpr']:.2f}" for t in thresholds) + " |")
    return "\n".join(lines)


def main(config: JudgeEvalConfig) -> None:
    summary = evaluate_judge(config)
    print(f"judge: {summary['judge']} {summary['judge_path']}")
    print(format_results(summary))
    print(f"results: {Path(config.out) / 'metrics.json'}, examples: {Path(config.out) / 'examples.png'}")
