"""Configs and entry functions of the `gymnast` subcommands that are not a library's own."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from gymnast_core.names import ACTION_TOPIC, DATA, IMAGE_TOPIC, OUTPUTS, SHIPPED, TELEOP_RECORDINGS
from gymnast_core.action_spec import BRIDGE_ACTION_SPEC
from gymnast_core.collect import CollectConfig, collect
from gymnast_core.dataset import EpisodeDataset, format_summary
from gymnast_core.envs.metaworld_env import MetaWorldEnv, RealityConfig, initial_states
from gymnast_core.lerobot import import_lerobot_v3
from gymnast_world_model.evaluate import EvalWorldModelConfig, evaluate_world_model, format_result, write_report
from gymnast_world_model.train import TrainWorldModelConfig, train_world_model
from gymnast_policy.sft import SFTConfig, train_sft
from gymnast_pipelines.train_judge import TrainJudgeConfig, train_judge
from gymnast_pipelines.bench import BenchConfig, check_cache, run_bench
from gymnast_pipelines.rl import RLConfig


@dataclass(frozen=True)
class DatasetInfoConfig:
    """Print a dataset's episode count, frames, per-source success rates and action statistics."""

    # Dataset folder.
    path: str = DATA


def dataset_info(config: DatasetInfoConfig) -> None:
    print(format_summary(EpisodeDataset.open(config.path).summary()))


@dataclass(frozen=True)
class ConvertConfig:
    """Convert recorded MCAP episodes (the recorder node's) into a training dataset; reruns add only new files."""

    # MCAP files or folders of them, comma-separated.
    inputs: str = TELEOP_RECORDINGS
    out: str = "outputs/data/teleop"
    # Resize frames to this square size (0 = keep the camera's size).
    image_size: int = 0
    image_topic: str = IMAGE_TOPIC
    action_topic: str = ACTION_TOPIC


def convert(config: ConvertConfig) -> None:
    from gymnast_robot.mcap_episodes import convert_mcap

    dataset = convert_mcap([p for p in config.inputs.split(",") if p], config.out, config.image_size or None,
                           config.image_topic, config.action_topic)
    print(format_summary(dataset.summary()))


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class MainJobRLConfig(RLConfig):
    """RL in the main job: fewer GRPO updates than the bench's, to fit its 30 minutes."""

    updates: int = 16


@dataclass(frozen=True)
class MainJobBenchConfig(BenchConfig):
    """The main job's bench: SFT against World-Gymnast on one seed, to fit its 30 minutes;
    `gymnast bench dream-to-real` runs every arm on several. Subclasses, not instances, because
    draccus builds a nested config from its field's type (see CpuGRPOConfig)."""

    arms: tuple[str, ...] = ("sft", "world-gymnast")
    seeds: tuple[int, ...] = (0,)
    rl: MainJobRLConfig = field(default_factory=MainJobRLConfig)


@dataclass(frozen=True)
class RunConfig:
    """The main job on the embedded default: the World-Gymnast pipeline end to end.

    collect -> world model -> SFT -> judge -> GRPO in the dream -> evaluation in the reality,
    ending in the results table and GIFs. By default the world model, SFT policy and judge
    start from the checkpoints this project trained and ships (checkpoints/default), so the job
    fits ~30 minutes on 2 cores; `--from_scratch true` trains all three here (about 36 minutes more).
    Every stage resumes: a finished stage is skipped on a re-run, an interrupted one continues.
    """

    # Root folder of every artefact of the run; stage outputs go to fixed sub-folders.
    out: str = OUTPUTS
    from_scratch: bool = False
    shipped: str = SHIPPED
    collect: CollectConfig = field(default_factory=CollectConfig)
    world_model: TrainWorldModelConfig = field(default_factory=TrainWorldModelConfig)
    world_model_eval: EvalWorldModelConfig = field(default_factory=EvalWorldModelConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    judge: TrainJudgeConfig = field(default_factory=TrainJudgeConfig)
    bench: MainJobBenchConfig = field(default_factory=MainJobBenchConfig)


def run(config: RunConfig) -> None:
    shipped = Path(config.shipped)
    reuse = not config.from_scratch and (shipped / "world_model.pt").exists()
    # Where each stage's model lives, fixed up front so the arms' cache is checked before any training.
    world_model = shipped / "world_model.pt" if reuse else Path(f"{config.out}/world_model/checkpoint.pt")
    policy = shipped / "policy_sft" if reuse else Path(f"{config.out}/policy_sft")
    judge = shipped / "judge" if reuse else Path(f"{config.out}/judge")
    dream = replace(config.bench.dream, checkpoint=str(world_model))
    # Its own folder, not `gymnast bench dream-to-real`'s: the two run the arms under different settings.
    bench = replace(config.bench, out=f"{config.out}/main_job", report=f"{config.out}/report",
                    dataset=f"{config.out}/data", sft_policy=str(policy), judge_dir=str(judge), dream=dream,
                    judge=replace(config.bench.judge, backend="learned", path=str(judge)),
                    command="gymnast run" + (" --from_scratch true" if config.from_scratch else ""))
    check_cache(bench)

    print("== 1/6 collect the 'real' dataset")
    dataset = collect(replace(config.collect, out=bench.dataset))
    print(format_summary(dataset.summary()))

    print("\n== 2/6 world model" + (f" (shipped: {shipped / 'world_model.pt'})" if reuse else ""))
    if not reuse:
        train_world_model(replace(config.world_model, dataset=bench.dataset, out=str(world_model.parent)))
    world_model_eval = replace(config.world_model_eval, checkpoint=str(world_model), out=f"{config.out}/report/world_model",
                               dataset=bench.dataset)
    result = evaluate_world_model(world_model_eval)
    print(format_result(result))
    write_report(result, Path(world_model_eval.out), "gymnast run")

    print("\n== 3/6 SFT policy" + (f" (shipped: {shipped / 'policy_sft'})" if reuse else ""))
    if not reuse:
        train_sft(replace(config.sft, dataset=bench.dataset, out=str(policy)))

    print("\n== 4/6 learned judge" + (f" (shipped: {shipped / 'judge'})" if reuse else ""))
    if not reuse:
        train_judge(replace(config.judge, dataset=bench.dataset, dream=dream, policy=str(policy), out=str(judge)))

    print("\n== 5/6 GRPO in the dream, then 6/6 evaluation in the reality")
    table = run_bench(bench)
    print(table.read_text())
    print(f"table: {table}\nGIFs: {bench.out}/world-gymnast/gifs, {bench.out}/eval/*/*/seed0/episodes.gif")
