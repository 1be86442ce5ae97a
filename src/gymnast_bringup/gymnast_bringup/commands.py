"""Configs and entry functions of the `gymnast` subcommands that are not a library's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC
from gymnast_core.collect import CollectConfig, collect
from gymnast_core.dataset import EpisodeDataset, format_summary
from gymnast_core.envs.metaworld_env import MetaWorldEnv, RealityConfig, initial_states
from gymnast_core.lerobot import import_lerobot_v3
from gymnast_world_model.evaluate import EvalWorldModelConfig, evaluate_world_model, format_result, write_report
from gymnast_world_model.train import TrainWorldModelConfig, train_world_model


@dataclass
class DatasetInfoConfig:
    """Print a dataset's episode count, frames, per-source success rates and action statistics."""

    # Dataset folder.
    path: str = "outputs/data/metaworld"


def dataset_info(config: DatasetInfoConfig) -> None:
    print(format_summary(EpisodeDataset.open(config.path).summary()))


@dataclass
class ImportLeRobotConfig:
    """Convert a local LeRobot v3 dataset (parquet + mp4, e.g. a Bridge V2 mirror) into a gymnast dataset."""

    # Root of the LeRobot dataset (holds meta/, data/, videos/).
    src: str = ""
    # Output dataset folder.
    out: str = "outputs/data/lerobot"
    # Video feature to use as the camera; default: the first one.
    camera: str | None = None
    # Feature holding the 7-D Bridge action.
    action_key: str = "action"
    # Frames are resized to image_size x image_size.
    image_size: int = 64


def import_lerobot(config: ImportLeRobotConfig) -> None:
    if not config.src:
        raise SystemExit("import-lerobot: --src is required (the LeRobot dataset root)")
    dataset = import_lerobot_v3(config.src, config.out, BRIDGE_ACTION_SPEC, config.camera, config.action_key, config.image_size)
    print(format_summary(dataset.summary()))


@dataclass
class MakeTasksConfig:
    """Render held-out initial states of the reality as task folders (initial_frame.png + task.json)."""

    out: str = "outputs/tasks"
    reality: RealityConfig = field(default_factory=RealityConfig)
    # 'train' or 'eval' initial states.
    split: str = "eval"
    # Task folders per Meta-World task.
    per_task: int = 2


def make_tasks(config: MakeTasksConfig) -> None:
    env = MetaWorldEnv(config.reality)
    try:
        for name in config.reality.tasks:
            tasks = initial_states(name, config.split, config.per_task)
            frames = env.reset(tasks)
            for task, frame in zip(tasks, frames):
                task.initial_frame = frame
                folder = f"{config.out}/{name}_{task.env_state['seed']}"
                task.save(folder)
                print(folder)
    finally:
        env.close()


@dataclass
class RunConfig:
    """The main job on the embedded default: the World-Gymnast pipeline end to end.

    Every stage resumes: a finished stage is skipped on a re-run, an interrupted one continues.
    """

    # Root folder of every artefact of the run; stage outputs go to fixed sub-folders.
    out: str = "outputs/default"
    collect: CollectConfig = field(default_factory=CollectConfig)
    world_model: TrainWorldModelConfig = field(default_factory=TrainWorldModelConfig)
    world_model_eval: EvalWorldModelConfig = field(default_factory=EvalWorldModelConfig)


def run(config: RunConfig) -> None:
    print("== 1/3 collect the 'real' dataset")
    config.collect.out = f"{config.out}/data"
    dataset = collect(config.collect)
    print(format_summary(dataset.summary()))

    print("\n== 2/3 train the world model")
    config.world_model.dataset, config.world_model.out = config.collect.out, f"{config.out}/world_model"
    checkpoint = train_world_model(config.world_model)

    print("\n== 3/3 world-model fidelity on held-out episodes")
    config.world_model_eval.checkpoint, config.world_model_eval.out = str(checkpoint), f"{config.out}/world_model/eval"
    result = evaluate_world_model(config.world_model_eval)
    print(format_result(result))
    print(f"report: {write_report(result, Path(config.world_model_eval.out), 'gymnast run')}")
