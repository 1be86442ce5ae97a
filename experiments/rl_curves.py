"""Learning curves of `gymnast rl` runs: real success against real episodes consumed and against updates.

    .venv/bin/python experiments/rl_curves.py --runs outputs/exp/rl_base outputs/exp/rl_adapt --out docs/bench/engine_curves

A Real-RL run's training rollouts are real episodes, so its curve is each update's training success
(sampled at the rollout temperature). A run in the dream or the simulator sees reality only at its
validations (`--validate_every`), so its curve is the validation's real success (greedy), against
the real episodes those validations used. Writes <out>.png (one line per run, training rates as dots
under a moving mean over `--window` updates) and <out>.csv (every point of every run).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gymnast_core.atomic import atomic_open, read_json  # noqa: E402

FIELDS = ["run", "env", "measure", "update", "real_episodes", "success", "per_task"]


def real_points(folder: Path, label: str) -> list[dict]:
    """The run's real-success points, as CSV rows."""
    config = read_json(folder / "config.json")
    env = config["env"]
    if env == "reality":
        with open(folder / "metrics.csv", newline="") as handle:
            return [{"run": label, "env": env, "measure": "training (sampled)", "update": int(r["update"]),
                     "real_episodes": int(r["real_episodes"]), "success": float(r["success"]), "per_task": r["per_task"]}
                    for r in csv.DictReader(handle)]
    per_task_episodes = config["validation_episodes_per_task"]
    points, used = [], 0
    with open(folder / "validation.jsonl") as handle:
        for line in handle:
            result = json.loads(line)
            used += per_task_episodes * len(result["real_per_task"])
            points.append({"run": label, "env": env, "measure": "validation (greedy)", "update": result["update"],
                           "real_episodes": used, "success": result["real_success"],
                           "per_task": json.dumps(result["real_per_task"])})
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="rl output folders")
    parser.add_argument("--labels", nargs="*", default=None, help="one label per run (default: folder names)")
    parser.add_argument("--out", type=Path, required=True, help="path without suffix for the .png and .csv")
    parser.add_argument("--window", type=int, default=4, help="updates in the moving mean of training success")
    args = parser.parse_args()
    labels = args.labels or [run.name for run in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"{len(labels)} labels for {len(args.runs)} runs")

    figure, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    rows = []
    for run, label in zip(args.runs, labels):
        points = real_points(run, label)
        rows += points
        success = np.array([p["success"] for p in points])
        for axis, key in zip(axes, ("real_episodes", "update")):
            x = np.array([p[key] for p in points])
            if points[0]["env"] == "reality":
                window = min(args.window, len(success))
                line, = axis.plot(x[window - 1:], np.convolve(success, np.ones(window) / window, mode="valid"), label=label)
                axis.scatter(x, success, s=8, alpha=0.4, color=line.get_color())
            else:
                axis.plot(x, success, marker="o", label=f"{label} (validation, greedy)")
    axes[0].set_xlabel("real episodes consumed by RL")
    axes[1].set_xlabel("update")
    axes[0].set_ylabel("real success")
    figure.suptitle(f"Real-RL: its training rollouts (sampled; line = mean of {args.window} updates). "
                    "Dream and simulator runs: their real validations (greedy).", fontsize=9)
    axes[0].set_ylim(0, 1)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    with atomic_open(args.out.with_suffix(".png"), "wb") as handle:
        figure.savefig(handle, format="png", dpi=120)
    with atomic_open(args.out.with_suffix(".csv"), "w") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{args.out.with_suffix('.png')}, {args.out.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
