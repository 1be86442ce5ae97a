"""Average the P(success) of several learned judges on `gymnast judge-eval`'s cached test sets,
for every combination of them, and print accuracy / false-positive rate per test set; with
`--per_task`, TPR / FPR per test set and task for all the judges averaged together.

It gave the ensemble lines of docs/history.md (judge: reach, and the five default tasks). Choosing
members by these numbers grades the ensemble on its own test sets, so it screens ideas; it does
not select a judge to ship.

Usage: .venv/bin/python experiments/judge_ensemble.py --videos outputs/exp/judge-eval-videos-v2
       outputs/exp/judge-v2-base outputs/exp/judge-v2-fw15pw15 ...
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from gymnast_reward.learned_judge import load_learned_judge
from gymnast_pipelines.train_judge import LabelledVideos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("judges", nargs="+", help="learned judge folders")
    parser.add_argument("--videos", required=True, help="judge-eval's --videos_cache folder (one .npz per test set)")
    parser.add_argument("--per_task", action="store_true", help="TPR / FPR per task of all the judges averaged")
    args = parser.parse_args()
    torch.set_num_threads(2)

    sets = {path.stem: LabelledVideos.load(path) for path in sorted(Path(args.videos).glob("*.npz"))}
    probabilities = {judge: {name: load_learned_judge(judge).probabilities(data.videos, data.instructions)
                             for name, data in sets.items()} for judge in args.judges}
    if args.per_task:
        for name, data in sets.items():
            said = np.mean([probabilities[m][name] for m in args.judges], axis=0) >= 0.5
            instructions = np.array(data.instructions)
            for instruction in sorted(set(data.instructions)):
                positives, negatives = (instructions == instruction) & data.labels, (instructions == instruction) & ~data.labels
                print(f"{name} | {instruction} | TPR {said[positives].sum()}/{positives.sum()} | FPR {said[negatives].sum()}/{negatives.sum()}")
        return
    print("members | " + " | ".join(f"{name} acc / FPR" for name in sets))
    for size in range(1, len(args.judges) + 1):
        for members in itertools.combinations(args.judges, size):
            cells = []
            for name, data in sets.items():
                said = np.mean([probabilities[m][name] for m in members], axis=0) >= 0.5
                cells.append(f"{(said == data.labels).mean():.3f} / {(said & ~data.labels).sum() / (~data.labels).sum():.3f}")
            print(" + ".join(Path(m).name for m in members) + " | " + " | ".join(cells))


if __name__ == "__main__":
    main()
