"""`gymnast bench dream-to-real`: every arm trained on the same data, scored in the unshifted reality.

Arms (the paper's Tables 1-2, plus Real-RL as an upper bound that pays for real interaction):
- sft: the supervised policy;
- iter-sft: its dream rollouts, filtered by the judge, mixed 1:1 with the demos, SFT again;
- sim-rl: GRPO in the shifted "software simulator" with its ground-truth dense reward;
- world-gymnast: GRPO in the dream with the judge's reward;
- real-rl: GRPO in the reality with its true reward;
- expert and random: the scripted expert (the ceiling) and uniform random actions (the floor).
Each arm is evaluated on held-out initial states (episodes_per_task per seed, several seeds), at the
rollout temperature that GRPO trains (the table's figure) and greedy, and also in the dream + judge
from the same initial states (dream-estimated success, greedy).
Every stage caches its outputs under `out`, so a re-run only does what is missing.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gymnast_core.atomic import atomic_open, config_as_json, read_json, write_json
from gymnast_core.dataset import EpisodeDataset
from gymnast_core.envs.metaworld_env import MetaWorldEnv, RealityConfig, initial_states
from gymnast_core.episode import Episode
from gymnast_core.names import DATA, JUDGE, OUTPUTS, RL_TASK_SEEDS, SFT_POLICY
from gymnast_core.resume import NOT_RESULT_SETTINGS, differences
from gymnast_core.verdicts import known_rates
from gymnast_policy.checkpoint import load_policy
from gymnast_policy.evaluate import EvalPolicyConfig, evaluate_policy, rollout, sampled, standard_error
from gymnast_policy.sft import SFTConfig, train_sft
from gymnast_reward.judges import JudgeConfig, make_judge
from gymnast_world_model.dream_env import DreamConfig
from gymnast_pipelines.reality_check import dream_verdicts, task_names
from gymnast_pipelines.rl import RLConfig, train_rl, with_real_frames

# Reference policies: evaluated only, with neither training nor a dream estimate.
REFERENCE_ARMS = ("expert", "random")
ARMS = ("sft", "world-gymnast", "sim-rl", "iter-sft", "real-rl") + REFERENCE_ARMS
ARM_LABELS = {"sft": "SFT", "iter-sft": "Iter-SFT", "sim-rl": "Sim-RL", "world-gymnast": "World-Gymnast", "real-rl": "Real-RL",
              "expert": "scripted expert", "random": "random"}


@dataclass(frozen=True)
class BenchConfig:
    """Train (or reuse) every arm on the same data and evaluate all of them in the reality."""

    out: str = f"{OUTPUTS}/bench"
    # Where the table (markdown + PNG) and GIFs are written.
    report: str = "docs/bench"
    arms: tuple[str, ...] = ARMS
    dataset: str = DATA
    sft_policy: str = SFT_POLICY
    # The learned judge's training set (its policy rollouts are real episodes too).
    judge_dir: str = JUDGE
    dream: DreamConfig = field(default_factory=DreamConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    reality: RealityConfig = field(default_factory=RealityConfig)
    # The GRPO settings every RL arm shares (env, policy and out are set per arm).
    rl: RLConfig = field(default_factory=RLConfig)
    # Iter-SFT: dream rollouts per task before the judge's filter, and the SFT steps after it.
    iter_sft_rollouts_per_task: int = 32
    iter_sft_steps: int = 300
    seeds: tuple[int, ...] = (0, 1, 2)
    episodes_per_task: int = 40
    # Episodes per task of the dream-estimated success (the first of seed 0's initial states; 0 = none,
    # e.g. for tasks the world model was not trained on).
    dream_episodes_per_task: int = 20
    threads: int = 2
    # The command line that produced the table (set by the CLI).
    command: str = "gymnast bench dream-to-real"


def model_digests(config: BenchConfig) -> dict[str, str | None]:
    """SHA-256 of the models the arms start from, keyed by setting; None for one not trained yet."""
    paths = {"sft_policy": config.sft_policy, "judge.path": config.judge.path, "dream.checkpoint": config.dream.checkpoint}
    digests = {}
    for name, value in paths.items():
        path = Path(value)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path] if path.exists() else []
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
        digests[f"sha256 of {name}"] = digest.hexdigest() if files else None
    return digests


def check_cache(config: BenchConfig) -> None:
    """Refuse to reuse `out` when it was filled under other settings or from other models.

    Arms are cached by folder, so without this a rerun after changing the world model, the
    judge or the GRPO settings, or after retraining a model at the same path, would silently
    put stale arms in the table.
    """
    settings = config_as_json(config) | model_digests(config)
    path = Path(config.out) / "bench_settings.json"
    # Nothing cached yet (e.g. an earlier start failed before training anything): the settings are free.
    if not path.exists() or not any(p != path for p in path.parent.iterdir()):
        write_json(path, settings)
        return
    saved = read_json(path)
    # A model that did not exist at the first start was trained by that run (`gymnast run --from_scratch`).
    adopted = {k: v for k, v in settings.items() if k.startswith("sha256 of ") and k in saved and saved[k] is None}
    if adopted:
        write_json(path, saved := saved | adopted)
    changed = differences(saved, settings, NOT_RESULT_SETTINGS)
    if changed:
        raise ValueError(f"{config.out} holds arms trained or evaluated with other settings ({'; '.join(changed)}, "
                         f"recorded in {path}); use a fresh --out, or delete the arms that no longer apply and {path.name}")


def train_iter_sft(config: BenchConfig, folder: Path) -> Path:
    """SFT policy -> dream rollouts from real initial frames -> judge filter -> SFT on them + demos (1:1)."""
    policy_dir = folder / "policy"
    if (policy_dir / "policy.json").exists() and (folder / "done.json").exists():
        return policy_dir
    data_dir = folder / "dream_data"
    if not (data_dir / "done.json").exists():
        policy, env, judge = load_policy(config.sft_policy), config.dream.make_env(), make_judge(config.judge)
        reality = MetaWorldEnv(config.reality)
        try:
            tasks = with_real_frames([t for name in config.reality.tasks for t in initial_states(
                name, "train", config.iter_sft_rollouts_per_task, RL_TASK_SEEDS)], reality)
        finally:
            reality.close()
        # Leaving the block computes the statistics and releases the writer lock.
        with EpisodeDataset.create(data_dir, env.action_spec, image_size=env.image_size,
                                   tasks=list(config.reality.tasks)) as dataset:
            for start in tqdm(range(0, len(tasks), 32), desc="iter-sft dreams", unit="batch"):
                batch = tasks[start:start + 32]
                with torch.no_grad():
                    videos, actions = rollout(env, batch, sampled(policy, 1.0),
                                              config.rl.grpo.horizon, policy.image_size)
                verdict = judge.judge(videos, [t.instruction for t in batch])
                for i in np.flatnonzero(verdict.success):
                    task = batch[i]
                    dataset.append(Episode(videos[i], actions[i], task.instruction, True,
                                           {"source": "dream", "task": task.env_state["task"], "judge": judge.name}),
                                   f"{task.env_state['task']}/dream/{task.env_state['seed']}")
            if not len(dataset):
                raise ValueError("iter-sft: the judge accepted none of the SFT policy's dream rollouts")
        write_json(data_dir / "done.json", {"kept": len(dataset), "rollouts": len(tasks)})
    train_sft(SFTConfig(dataset=config.dataset, out=str(policy_dir), init=config.sft_policy, mix_dataset=str(data_dir),
                        steps=config.iter_sft_steps, max_minutes=0, threads=config.threads))
    write_json(folder / "done.json", read_json(data_dir / "done.json"))
    return policy_dir


def train_arm(config: BenchConfig, arm: str) -> Path:
    folder = Path(config.out) / arm
    if arm in REFERENCE_ARMS:
        return Path(arm)
    if arm == "sft":
        return Path(config.sft_policy)
    if arm == "iter-sft":
        return train_iter_sft(config, folder)
    env = {"sim-rl": "sim", "world-gymnast": "dream", "real-rl": "reality"}[arm]
    return train_rl(replace(config.rl, env=env, policy=config.sft_policy, out=str(folder), dream=config.dream,
                            judge=config.judge, reality=config.reality, threads=config.threads))


def real_episodes_used(config: BenchConfig, arm: str) -> dict:
    """Real-environment episodes each arm consumed in training, by purpose."""
    if arm in REFERENCE_ARMS:
        return {"total": 0}
    demos = read_json(Path(config.sft_policy) / "policy.json").get("sft", {}).get("demos", 0)
    used = {"demos": demos}
    if arm in ("iter-sft", "world-gymnast"):
        used["world-model data"] = len(EpisodeDataset.open(config.dataset))
        judge = read_json(Path(config.judge_dir) / "judge.json")
        used["judge policy rollouts"] = judge.get("trained_on", {}).get("policy", 0)
        if judge.get("extra_real_episodes"):
            used["judge extra real episodes"] = judge["extra_real_episodes"]
    if arm in ("sim-rl", "world-gymnast", "real-rl"):
        summary = read_json(Path(config.out) / arm / "summary.json")
        if summary["real_episodes_rl"]:
            # The dream arm's are the real rollouts its dreams restart from (--rl.dream_restart_step).
            used["RL rollouts" if arm == "real-rl" else "real rollouts dreams restart from"] = summary["real_episodes_rl"]
        if summary["real_episodes_validation"]:
            used["real validation"] = summary["real_episodes_validation"]
    return {**used, "total": sum(used.values())}


def evaluate_arm(config: BenchConfig, arm: str, policy_dir: Path, temperature: float) -> list[dict]:
    """Per-seed results at `temperature` (0 = greedy; a reference arm has one, evaluated once)."""
    results = []
    decoding = "greedy" if temperature == 0 or arm in REFERENCE_ARMS else f"t{temperature:g}"
    for seed in config.seeds:
        out = Path(config.out) / "eval" / arm / decoding / f"seed{seed}"
        if not (out / "results.json").exists():
            evaluate_policy(EvalPolicyConfig(policy=str(policy_dir), reality=config.reality, episodes_per_task=config.episodes_per_task,
                                             first_state=seed * config.episodes_per_task, temperature=temperature,
                                             out=str(out), seed=seed, threads=config.threads))
        results.append(read_json(out / "results.json"))
    return results


def dream_estimate(config: BenchConfig, arm: str, policy_dir: Path) -> dict:
    """Greedy success as the dream + judge see it, from the real initial frames of seed 0's evaluation states."""
    if arm in REFERENCE_ARMS or not config.dream_episodes_per_task:
        return {"per_task": {}, "mean": float("nan"), "judge": None}
    path = Path(config.out) / "eval" / arm / "dream_estimate.json"
    if path.exists():
        return read_json(path)
    policy, env, judge = load_policy(policy_dir), config.dream.make_env(), make_judge(config.judge)
    reality = MetaWorldEnv(config.reality)
    try:
        tasks = with_real_frames([t for name in config.reality.tasks
                                  for t in initial_states(name, "eval", config.dream_episodes_per_task)], reality)
    finally:
        reality.close()
    verdicts = dream_verdicts(policy, env, judge, tasks, config.reality.max_steps)
    per_task = known_rates(verdicts.success, verdicts, task_names(tasks), config.rl.grpo.min_known_verdicts)
    estimate = {"per_task": per_task, "mean": float(np.mean(list(per_task.values()))), "judge": judge.name}
    write_json(path, estimate)
    return estimate


def pool_seeds(results: list[dict]) -> dict:
    """Per-task success pooled over seeds, with binomial standard errors; the mean over tasks."""
    per_task = {}
    for task in results[0]["per_task"]:
        n = sum(r["per_task"][task]["episodes"] for r in results)
        p = sum(r["per_task"][task]["success"] * r["per_task"][task]["episodes"] for r in results) / n
        per_task[task] = {"success": p, "stderr": standard_error(p, n), "episodes": n}
    mean = float(np.mean([t["success"] for t in per_task.values()]))
    mean_se = math.sqrt(sum(t["stderr"] ** 2 for t in per_task.values())) / len(per_task)
    seed_means = [r["mean"] for r in results]
    return {"per_task": per_task, "mean": mean, "mean_stderr": mean_se, "seed_means": seed_means}


def compare_with_sft(rows: dict[str, dict], key: str) -> list[str]:
    """Each learned arm against SFT on `key`'s results: the ratio of means, whether the margin exceeds
    the standard errors, and the tasks where it gains by more than their combined standard error."""
    if "sft" not in rows:
        return []
    sft = rows["sft"][key]
    lines = []
    for arm in (a for a in rows if a not in ("sft", *REFERENCE_ARMS)):
        real = rows[arm][key]
        margin, bar = real["mean"] - sft["mean"], real["mean_stderr"] + sft["mean_stderr"]
        ratio = f"{real['mean'] / sft['mean']:.2f}" if sft["mean"] > 0 else "inf"
        gains = [t.removesuffix("-v3") for t, r in real["per_task"].items()
                 if r["success"] - sft["per_task"][t]["success"] > math.hypot(r["stderr"], sft["per_task"][t]["stderr"])]
        verdict = "beats" if margin > bar else "does not beat"
        lines.append(f"- {ARM_LABELS[arm]} / SFT: {ratio}; it {verdict} SFT by more than the standard errors ({margin:+.3f} vs "
                     f"{real['mean_stderr']:.3f} + {sft['mean_stderr']:.3f} = {bar:.3f}); it gains beyond the standard error "
                     f"on {len(gains)} of {len(real['per_task'])} tasks ({', '.join(gains) or 'none'}).")
    return lines


def results_table(rows: dict[str, dict], key: str, tasks: list[str], extra: bool) -> list[str]:
    short = [t.removesuffix("-v3") for t in tasks]
    header = "| arm | " + " | ".join(short) + " | mean |" + (" dream-estimated | real episodes used |" if extra else "")
    lines = [header, "|---" * (len(tasks) + 2 + 2 * extra) + "|"]
    for arm, row in rows.items():
        real = row[key]
        cells = [f"{real['per_task'][t]['success']:.3f} +- {real['per_task'][t]['stderr']:.3f}" for t in tasks]
        line = f"| {ARM_LABELS[arm]} | " + " | ".join(cells) + f" | **{real['mean']:.3f} +- {real['mean_stderr']:.3f}** |"
        if extra:
            dream = "-" if math.isnan(row["dream"]["mean"]) else f"{row['dream']['mean']:.3f}"
            line += f" {dream} | {row['episodes']['total']} |"
        lines.append(line)
    return lines


def write_table(config: BenchConfig, rows: dict[str, dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = Path(config.report)
    report.mkdir(parents=True, exist_ok=True)
    tasks = list(next(iter(rows.values()))["real"]["per_task"])
    short = [t.removesuffix("-v3") for t in tasks]
    temperature = config.rl.grpo.temperature
    lines = ["# Dream-to-real benchmark", "", f"Produced by: `{config.command}`", "",
             f"Success in the unshifted reality on held-out initial states: {config.episodes_per_task} episodes per task "
             f"per seed, seeds {list(config.seeds)} (n = {config.episodes_per_task * len(config.seeds)} per task); +- is the "
             f"binomial standard error. The table's figure samples actions at the rollout temperature {temperature}: "
             "that is the policy GRPO trains and the judge scores. Greedy decoding follows. " + (
                 "Dream-estimated success: the same policy, greedy, in the world model from the real first frames of the first "
                 f"{config.dream_episodes_per_task} of seed 0's states per task, scored by the learned judge."
                 if config.dream_episodes_per_task else "Dream-estimated success was not measured."), "",
             f"## Sampled at temperature {temperature}", ""]
    lines += results_table(rows, "real", tasks, extra=True) + [""] + compare_with_sft(rows, "real")
    lines += ["", "## Greedy", ""] + results_table(rows, "real_greedy", tasks, extra=False) + [""]
    lines += compare_with_sft(rows, "real_greedy")
    lines += ["", "Real episodes used in training, by purpose:", ""]
    for arm, row in rows.items():
        if arm not in REFERENCE_ARMS:
            parts = ", ".join(f"{k} {v}" for k, v in row["episodes"].items() if k != "total")
            lines.append(f"- {ARM_LABELS[arm]}: {parts}")
    lines += ["", f"Wall time on {config.threads} CPU threads, training and evaluation: "
              + ", ".join(f"{ARM_LABELS[arm]} {row['wall_minutes']:.1f} min" for arm, row in rows.items())
              + f"; the whole bench {sum(row['wall_minutes'] for row in rows.values()):.1f} min."]
    lines += ["", "![success per task](table.png)", ""]
    path = report / "table.md"
    with atomic_open(path, "w") as handle:
        handle.write("\n".join(lines))
    write_json(report / "results.json", {"command": config.command, "rows": rows})

    figure, axis = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(rows)
    x = np.arange(len(tasks) + 1)
    for i, (arm, row) in enumerate(rows.items()):
        real = row["real"]
        values = [real["per_task"][t]["success"] for t in tasks] + [real["mean"]]
        errors = [real["per_task"][t]["stderr"] for t in tasks] + [real["mean_stderr"]]
        axis.bar(x + i * width, values, width, yerr=errors, capsize=2, label=ARM_LABELS[arm])
    axis.set_xticks(x + width * (len(rows) - 1) / 2, short + ["mean"])
    axis.set_ylabel(f"success in reality (sampled, T = {temperature})")
    axis.set_ylim(0, 1.05)
    axis.legend(ncols=len(rows), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.15))
    figure.tight_layout()
    with atomic_open(report / "table.png", "wb") as handle:
        figure.savefig(handle, format="png", dpi=120)
    plt.close(figure)
    return path


def add_wall_minutes(config: BenchConfig, arm: str, seconds: float) -> float:
    """The arm's wall time over every run of this bench (a resumed arm adds its new part), in minutes."""
    path = Path(config.out) / "wall_minutes.json"
    minutes = read_json(path) if path.exists() else {}
    minutes[arm] = minutes.get(arm, 0.0) + seconds / 60
    write_json(path, minutes)
    return minutes[arm]


def run_bench(config: BenchConfig) -> Path:
    unknown = [a for a in config.arms if a not in ARMS]
    if not config.arms:
        raise ValueError(f"no arms to run; choose from {', '.join(ARMS)}")
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    check_cache(config)
    torch.set_num_threads(config.threads)
    rows = {}
    for arm in config.arms:
        started = time.monotonic()
        policy_dir = train_arm(config, arm)
        rows[arm] = {"policy": str(policy_dir),
                     "real": pool_seeds(evaluate_arm(config, arm, policy_dir, config.rl.grpo.temperature)),
                     "real_greedy": pool_seeds(evaluate_arm(config, arm, policy_dir, 0.0)),
                     "dream": dream_estimate(config, arm, policy_dir), "episodes": real_episodes_used(config, arm)}
        rows[arm]["wall_minutes"] = add_wall_minutes(config, arm, time.monotonic() - started)
        tqdm.write(f"[bench] {arm}: real {rows[arm]['real']['mean']:.3f} +- {rows[arm]['real']['mean_stderr']:.3f}, "
                   f"dream-estimated {rows[arm]['dream']['mean']:.3f} ({rows[arm]['wall_minutes']:.1f} min)")
        table = write_table(config, rows)  # after every arm, so an interrupted bench still leaves a table
    return table


def main(config: BenchConfig) -> None:
    path = run_bench(replace(config, command="gymnast " + " ".join(sys.argv[1:])))
    print(path.read_text())
    print(f"table: {path}")
