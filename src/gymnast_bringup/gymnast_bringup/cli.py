"""`gymnast`: one entry point, one subcommand per user-facing verb.

Every subcommand takes a dataclass config; values come from the defaults, then an optional
YAML file (`--config_path file.yaml`), then dotted command-line flags (`--reality.image_size 128`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Tuple

import draccus
import yaml
from draccus.utils import ParsingError

from gymnast_bringup import console, graph
from gymnast_core.collect import CollectConfig
from gymnast_core.collect import main as collect_main
from gymnast_core.config_checks import check_config
from gymnast_core.dataset import DatasetError
from gymnast_core.verdicts import JudgeUnavailableError
from gymnast_pipelines import bench, commands, rl, train_judge
from gymnast_pipelines import calibrate as judge_calibrate
from gymnast_policy import evaluate as policy_eval
from gymnast_policy import sft
from gymnast_world_model import evaluate as world_model_eval
from gymnast_world_model import train as world_model_train


@dataclass(frozen=True)
class Command:
    config: type
    run: Callable[[Any], None]
    help: str


COMMANDS: dict[str, Command] = {
    "run": Command(commands.RunConfig, commands.run, "Run the main job end to end on the embedded default."),
    "collect": Command(CollectConfig, collect_main, "Collect expert demos and play data in the Meta-World reality."),
    "dataset-info": Command(commands.DatasetInfoConfig, commands.dataset_info, "Summarise a dataset."),
    "import-lerobot": Command(commands.ImportLeRobotConfig, commands.import_lerobot, "Import a LeRobot v3 dataset."),
    "convert": Command(commands.ConvertConfig, commands.convert, "Convert recorded MCAP episodes into a training dataset."),
    "make-tasks": Command(commands.MakeTasksConfig, commands.make_tasks, "Write task folders from held-out initial states."),
    "train-world-model": Command(world_model_train.TrainWorldModelConfig, world_model_train.main,
                                 "Train the action-conditioned video world model (the dream)."),
    "sft": Command(sft.SFTConfig, sft.main, "Supervised fine-tuning of the compact VLA on demonstrations."),
    "eval": Command(policy_eval.EvalPolicyConfig, policy_eval.main,
                    "Success per task (+- standard error) of a policy in the Meta-World reality, with videos."),
    "eval-world-model": Command(world_model_eval.EvalWorldModelConfig, world_model_eval.main,
                                "Open-loop fidelity (PSNR/SSIM) of a world model vs copy-last-frame and shuffled actions."),
    "train-judge": Command(train_judge.TrainJudgeConfig, train_judge.main,
                           "Train or refresh the learned success judge (real, dreamed and policy videos)."),
    "rl": Command(rl.RLConfig, rl.main, "GRPO in the dream (World-Gymnast), the shifted sim (Sim-RL) or the reality (Real-RL)."),
    "run-policy": Command(console.RunPolicyConfig, console.run_policy,
                          "Run the policy node on a running graph, sending the operator heartbeat; Ctrl-C cancels."),
    "train-in-scene": Command(console.TrainInSceneConfig, console.train_in_scene,
                              "Test-time training: GRPO in the dream from the current camera frame; the policy hot-reloads."),
    "bench dream-to-real": Command(bench.BenchConfig, bench.main,
                                   "Train or reuse every arm (SFT, Iter-SFT, Sim-RL, World-Gymnast, Real-RL); table of real success."),
    "judge-eval": Command(judge_calibrate.JudgeEvalConfig, judge_calibrate.main,
                          "Judge accuracy / TPR / FPR against ground truth on real and dreamed videos."),
}


def _decode_names(raw: Any, path: tuple[str, ...]) -> tuple[str, ...]:
    """A list of names; one name alone (`--reality.tasks reach-v3`) is a one-element list, not its letters."""
    if isinstance(raw, str):
        if "," in raw:
            raise ValueError(f"{raw!r} is one name with a comma in it; write several as '[{raw}]'")
        return (raw,)
    if isinstance(raw, (list, tuple)) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise ValueError(f"expected a name or a list of names like '[reach-v3,push-v3]', got {raw!r}")


# draccus looks decoders up by the typing form of an annotation.
draccus.decode.register(Tuple[str, ...], _decode_names)


def parse_config(name: str, config_type: type, args: list[str]) -> Any:
    """The command's config from defaults, YAML and flags; SystemExit(2) with a one-line reason on bad input."""
    try:
        return draccus.parse(config_type, args=args, prog=f"gymnast {name}")
    except (ParsingError, FileNotFoundError, yaml.YAMLError) as exc:
        message = ""
        while exc is not None:  # draccus wraps the YAML error or the rule that failed
            reason = " ".join(str(exc).split())
            if reason not in message:
                message = f"{message}: {reason}" if message else reason
            exc = exc.__cause__
        if "tuple" in message or "list" in message:
            message += "\n(lists are written '[a,b]', e.g. --reality.tasks '[reach-v3,push-v3]')"
        print(f"gymnast {name}: bad config: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: gymnast <command> [--config_path FILE.yaml] [--field value ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {cmd.help}" for name, cmd in COMMANDS.items()]
    lines += [f"  {'launch':<{width}}  Start a ROS 2 graph (real, dream, teleop): gymnast launch dream [node.param:=value ...]"]
    lines += ["", "`gymnast <command> --help` lists every option of a command with its default."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    if argv[0] == "launch":
        # ros2 launch's argument syntax (node.param:=value), not a dataclass config.
        try:
            graph.main(argv[1:])
        except (ValueError, FileNotFoundError) as exc:
            print(f"gymnast launch: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
        return
    # Two-word commands ("bench dream-to-real") first.
    name, rest = (" ".join(argv[:2]), argv[2:]) if " ".join(argv[:2]) in COMMANDS else (argv[0], argv[1:])
    if name not in COMMANDS:
        print(f"gymnast: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    command = COMMANDS[name]
    config = parse_config(name, command.config, rest)
    try:
        check_config(config)
        command.run(config)
    except (DatasetError, FileNotFoundError, ValueError, JudgeUnavailableError) as exc:
        print(f"gymnast {name}: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
