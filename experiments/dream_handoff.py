"""Where in a rollout does a world model lose fidelity? Dream the first m steps with one model
and the rest with another, and score open loop like `gymnast eval-world-model` (CFG 2 by default).

This located the self-forced model's k = 1 loss at a rollout's first step (docs/history.md,
"The self-forced model's first step"). Both models must share the codec and the conv trunk's
context (the rollout state is handed from one to the other).

Usage: .venv/bin/python experiments/dream_handoff.py --first OLD.pt --rest NEW.pt [--dataset outputs/default/data]
       [--handoff 0 1 3 5] [--cfg_scale 2.0] [--horizon 20]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from gymnast_core.dataset import EpisodeDataset
from gymnast_world_model.data import split_entries
from gymnast_world_model.dream_env import DreamEnv
from gymnast_world_model.evaluate import derangement, episode_clips, open_loop, psnr
from gymnast_world_model.world_model import load_world_model, read_checkpoint


class HandoffEnv(DreamEnv):
    """A dream whose first `handoff` steps come from `first` and the rest from `rest`."""

    def __init__(self, first, rest, handoff: int, sampling_steps: int, cfg_scale: float, seed: int = 0):
        super().__init__(first, sampling_steps, cfg_scale, seed=seed)
        self.first, self.rest, self.handoff, self.steps_taken = first, rest.eval(), handoff, 0

    def reset_frames(self, frames, instructions):
        self.model, self.steps_taken = self.first, 0
        return super().reset_frames(frames, instructions)

    def step(self, actions):
        self.model = self.first if self.steps_taken < self.handoff else self.rest
        self.steps_taken += 1
        return super().step(actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", required=True, help="checkpoint that dreams the first m steps")
    parser.add_argument("--rest", required=True, help="checkpoint that dreams the remaining steps (its held-out split is used)")
    parser.add_argument("--dataset", default="outputs/default/data")
    parser.add_argument("--handoff", type=int, nargs="+", default=[0, 1, 3, 5])
    parser.add_argument("--cfg_scale", type=float, default=2.0)
    parser.add_argument("--sampling_steps", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)

    first, rest = load_world_model(args.first), load_world_model(args.rest)
    dataset = EpisodeDataset.open(args.dataset)
    held_out = split_entries(dataset, read_checkpoint(args.rest)["holdout_fraction"])[1]
    real, actions, _ = episode_clips(dataset, held_out, rest.config.image_size, 0, args.horizon)
    shuffled = actions[derangement(len(actions), np.random.default_rng(0))]
    print(f"{len(real)} held-out episodes; model PSNR (dB) / margin vs copy-last / vs shuffled actions")
    for handoff in args.handoff:
        env = HandoffEnv(first, rest, handoff, args.sampling_steps, args.cfg_scale)
        dream = open_loop(env, real[:, 0], actions, args.batch_size)
        dream_shuffled = open_loop(env, real[:, 0], shuffled, args.batch_size)
        cells = []
        for k in (1, 5, 10, args.horizon):
            model, copy, other = (psnr(x, real[:, k]).mean() for x in (dream[:, k - 1], real[:, 0], dream_shuffled[:, k - 1]))
            cells.append(f"k={k} {model:.2f} / {model - copy:+.2f} / {model - other:+.2f}")
        print(f"first {handoff} steps from --first | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
