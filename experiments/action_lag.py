"""How much of the arm's next motion do the last few actions explain?

Drives Meta-World's arm with the default dataset's random exploration (uniform actions held for
1-5 steps) and fits, by least squares, the hand's displacement over each step to the last 1, 2, 3
or 4 actions. If the arm followed each action at once, the last action would explain it all; it
follows with a lag, which is why the world model conditions on the actions before the last
(`--model.action_history`, docs/world_model).

Usage: .venv/bin/python experiments/action_lag.py [--episodes 24] [--steps 40]
"""

from __future__ import annotations

import argparse

import numpy as np

from gymnast_core.collect import HeldRandomActions
from gymnast_core.envs.metaworld_env import MetaWorldEnv, RealityConfig, initial_states


def random_walks(episodes: int, steps: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Hand positions [steps + 1, 3] and actions [steps, 4] of random-exploration episodes."""
    env = MetaWorldEnv(RealityConfig())
    rng = np.random.default_rng(seed)
    positions, actions = [], []
    for episode in range(episodes):
        (task,) = initial_states(env.config.tasks[episode % len(env.config.tasks)], "train", 1, start=episode)
        env.reset([task])
        explore = HeldRandomActions(env.action_spec.dim, rng)
        hand, taken = [env.hand_positions()[0]], []
        for _ in range(steps):
            action = explore().astype(np.float32)
            env.step(action[None])
            hand.append(env.hand_positions()[0])
            taken.append(action)
        positions.append(np.stack(hand))
        actions.append(np.stack(taken))
    env.close()
    return positions, actions


def explained_variance(positions: list[np.ndarray], actions: list[np.ndarray], window: int, skip: int) -> float:
    """R^2 of a linear fit of each step's hand displacement to the last `window` xyz actions."""
    features, targets = [], []
    for hand, taken in zip(positions, actions):
        moves = np.diff(hand, axis=0)  # moves[t]: the displacement action t led to
        for t in range(skip, len(taken)):
            features.append(taken[t - window + 1:t + 1, :3].ravel())
            targets.append(moves[t])
    x = np.c_[np.stack(features), np.ones(len(features))]
    y = np.stack(targets)
    weights, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(1 - ((y - x @ weights) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    positions, actions = random_walks(args.episodes, args.steps, args.seed)
    windows = (1, 2, 3, 4)
    print(f"{args.episodes} random-exploration episodes of {args.steps} steps; hand displacement per step "
          "explained by the last n actions (R^2 of a linear fit, the same steps for every n):")
    for window in windows:
        print(f"  n = {window}: {explained_variance(positions, actions, window, skip=max(windows) - 1):.3f}")


if __name__ == "__main__":
    main()
