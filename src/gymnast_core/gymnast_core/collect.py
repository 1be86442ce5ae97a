"""Collect "real" video-action data in the evaluation reality.

Sources, so the world model and the judge see plenty of failures and near-misses:
  expert   Meta-World's scripted expert (the SFT demonstrations);
  noisy    the expert plus Gaussian noise of a per-episode scale (near-misses, partial successes);
  random   exploration: random actions held for a few steps, so the arm travels;
  stopped  (none by default) the expert halting partway, so the hand stops short of the goal.
Every episode is fully determined by its key's seed, so an interrupted collection resumes by
skipping keys already in the dataset. Episodes are produced by a process pool and written by
this process alone, which holds the dataset's writer lock.
"""

from __future__ import annotations

import multiprocessing as mp
import warnings
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from tqdm import tqdm

from gymnast_core.config_checks import at_least
from gymnast_core.dataset import EpisodeDataset, format_summary
from gymnast_core.envs.metaworld_env import MetaWorldEnv, RealityConfig, initial_states
from gymnast_core.episode import Episode
from gymnast_core.names import COLLECT_SEED_BLOCKS, DATA

SOURCES = tuple(COLLECT_SEED_BLOCKS)
# The `stopped` expert halts at a step drawn from this fraction of the episode.
STOP_FRACTION = (0.25, 0.75)


@dataclass(frozen=True)
class CollectConfig:
    """Collect expert demos and play data in the Meta-World reality into a dataset."""

    # Dataset folder (created, or resumed if it exists).
    out: str = DATA
    reality: RealityConfig = field(default_factory=RealityConfig)
    # Episodes per task from the scripted expert.
    expert: int = 25
    # Episodes per task from the expert plus Gaussian action noise.
    noisy: int = 50
    # Episodes per task of random exploration.
    random: int = 25
    # Episodes per task of the expert stopping partway.
    stopped: int = 0
    # Range of the noisy expert's per-episode noise scale (action units).
    noise_std: tuple[float, float] = (0.2, 0.8)
    # Index of the first initial state in each source's seed block: a second dataset with a
    # higher first_seed (e.g. extra judge data) shares no initial state with the first.
    first_seed: int = 0
    # Worker processes (one per core).
    workers: int = 2

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from at_least(self, {"expert": 0, "noisy": 0, "random": 0, "stopped": 0, "first_seed": 0, "workers": 1})


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to collect: its dataset key, task, source (one of SOURCES) and initial state."""

    key: str
    task: str
    source: str
    seed: int
    split: str = "train"
    # Range of the per-episode noise scale of the `noisy` source (action units).
    noise_std: tuple[float, float] = (0.0, 0.0)


def plan_jobs(config: CollectConfig) -> list[EpisodeJob]:
    jobs = []
    for task in config.reality.tasks:
        for source, count in (("expert", config.expert), ("noisy", config.noisy), ("random", config.random),
                              ("stopped", config.stopped)):
            for i in range(config.first_seed, config.first_seed + count):
                jobs.append(EpisodeJob(f"{task}/{source}/{i:05d}", task, source, COLLECT_SEED_BLOCKS[source] + i,
                                       noise_std=config.noise_std))
    return jobs


_worker_env: MetaWorldEnv | None = None


def _init_worker(reality: RealityConfig) -> None:
    global _worker_env
    # Meta-World's experts warn on every construction that their gains saturate; harmless.
    warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
    _worker_env = MetaWorldEnv(reality)


class HeldRandomActions:
    """Random exploration: uniform actions in [-1, 1], each held for 1-5 steps so the arm travels."""

    def __init__(self, dim: int, rng: np.random.Generator):
        self.dim, self.rng = dim, rng
        self.held, self.hold_left = np.zeros(dim, np.float32), 0

    def __call__(self) -> np.ndarray:
        if self.hold_left == 0:
            self.held, self.hold_left = self.rng.uniform(-1, 1, self.dim), int(self.rng.integers(1, 6))
        self.hold_left -= 1
        return self.held


def rollout(env: MetaWorldEnv, job: EpisodeJob) -> Episode:
    """One episode of `job.source` from the job's seeded initial state."""
    if job.source not in SOURCES:
        raise ValueError(f"unknown episode source {job.source!r}; choose one of {', '.join(SOURCES)}")
    (task,) = initial_states(job.task, job.split, 1, start=job.seed)
    rng = np.random.default_rng([job.seed, SOURCES.index(job.source)])
    frames = [env.reset([task])[0]]
    actions = []
    sigma = rng.uniform(*job.noise_std)
    explore = HeldRandomActions(env.action_spec.dim, rng)
    # Drawn for this source only: a draw for every source would change the noisy and random
    # episodes of every dataset collected before this source existed.
    stop_at = int(rng.uniform(*STOP_FRACTION) * env.config.max_steps) if job.source == "stopped" else env.config.max_steps
    for step in range(env.config.max_steps):
        if job.source == "expert" or job.source == "stopped" and step < stop_at:
            action = env.expert_actions()[0]
        elif job.source == "stopped":
            action = np.zeros(env.action_spec.dim)
        elif job.source == "noisy":
            action = env.expert_actions()[0] + rng.normal(0.0, sigma, env.action_spec.dim)
        else:
            action = explore()
        action = env.action_spec.clip(np.asarray(action, np.float32))
        frames.append(env.step(action[None])[0])
        actions.append(action)
    return Episode(
        frames=np.stack(frames),
        actions=np.stack(actions).astype(np.float32),
        instruction=task.instruction,
        success=bool(env.success[0]),
        metadata={"source": job.source, "task": job.task, "seed": job.seed, "robot": "sawyer-metaworld",
                  "fps": env.action_spec.control_hz, "noise_std": float(sigma) if job.source == "noisy" else 0.0,
                  "split": job.split, **({"stopped_at": stop_at} if job.source == "stopped" else {})},
    )


def _run_job(job: EpisodeJob) -> tuple[EpisodeJob, Episode]:
    assert _worker_env is not None
    return job, rollout(_worker_env, job)


def collect_jobs(out: str, reality: RealityConfig, jobs: list[EpisodeJob], workers: int) -> EpisodeDataset:
    """Roll out every job whose key `out` lacks, in a pool of `workers` processes, into the dataset at `out`."""
    # Locks the folder and checks a resumed dataset's actions, frame size and episode length
    # before any worker starts; leaving the block computes statistics over every episode.
    with EpisodeDataset.create(
        out, MetaWorldEnv(reality).action_spec, image_size=reality.image_size,
        episode_steps=reality.max_steps, tasks=list(reality.tasks),
    ) as dataset:
        todo = [job for job in jobs if job.key not in dataset]
        if todo:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(reality,)) as pool:
                for job, episode in tqdm(pool.imap_unordered(_run_job, todo), total=len(todo), desc="collect", unit="episode"):
                    dataset.append(episode, job.key)
    return dataset


def collect(config: CollectConfig) -> EpisodeDataset:
    return collect_jobs(config.out, config.reality, plan_jobs(config), config.workers)


def main(config: CollectConfig) -> None:
    dataset = collect(config)
    print(format_summary(dataset.summary()))
