"""Learning curves of `gymnast rl` runs: training success against real episodes consumed.

    .venv/bin/python scripts/rl_curves.py --runs outputs/exp/rl_base outputs/exp/rl_adapt --out docs/bench/engine_curves

writes <out>.png (one line per run, a moving mean over `--window` updates, with each update's rate
as dots) and <out>.csv (every update of every run: run, update, real_episodes, success, per-task rates).
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

from gymnast_core.atomic import atomic_open  # noqa: E402


def read_run(folder: Path) -> list[dict]:
    with open(folder / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="rl output folders (metrics.csv)")
    parser.add_argument("--labels", nargs="*", default=None, help="one label per run (default: folder names)")
    parser.add_argument("--out", type=Path, required=True, help="path without suffix for the .png and .csv")
    parser.add_argument("--window", type=int, default=4, help="updates in the moving mean")
    args = parser.parse_args()
    labels = args.labels or [run.name for run in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"{len(labels)} labels for {len(args.runs)} runs")

    figure, axis = plt.subplots(figsize=(7, 4))
    rows = []
    for run, label in zip(args.runs, labels):
        metrics = read_run(run)
        episodes = np.array([int(r["real_episodes"]) for r in metrics])
        success = np.array([float(r["success"]) for r in metrics])
        window = min(args.window, len(success))
        smooth = np.convolve(success, np.ones(window) / window, mode="valid")
        line, = axis.plot(episodes[window - 1:], smooth, label=label)
        axis.scatter(episodes, success, s=8, alpha=0.4, color=line.get_color())
        rows += [{"run": label, "update": r["update"], "real_episodes": r["real_episodes"], "success": r["success"],
                  "per_task": json.dumps(json.loads(r["per_task"]))} for r in metrics]
    axis.set_xlabel("real episodes in RL")
    axis.set_ylabel(f"training success (sampled; mean of {args.window} updates)")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_open(args.out.with_suffix(".png"), "wb") as handle:
        figure.savefig(handle, format="png", dpi=120)
    with atomic_open(args.out.with_suffix(".csv"), "w") as handle:
        writer = csv.DictWriter(handle, ["run", "update", "real_episodes", "success", "per_task"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{args.out.with_suffix('.png')}, {args.out.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
