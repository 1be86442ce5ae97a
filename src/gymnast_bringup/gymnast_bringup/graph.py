"""The one description of the ROS 2 graphs, read by the launch files and by `gymnast launch`.

`ros2 launch gymnast_bringup dream.launch.py` (robot computers with ROS 2 installed) and
`gymnast launch dream` (anywhere rclpy runs, e.g. from pip wheels, where `launch` does not
exist) start the same nodes with the same params YAML keyed by node name.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from gymnast_core.ros_env import loopback_ros_env

PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class NodeSpec:
    package: str
    executable: str  # a console script of `package`
    name: str


CAMERA = NodeSpec("gymnast_robot", "camera_node", "camera")
DRIVER = NodeSpec("gymnast_robot", "widowx_driver_node", "widowx_driver")
TELEOP = NodeSpec("gymnast_robot", "teleop_node", "teleop")
RECORDER = NodeSpec("gymnast_robot", "recorder_node", "recorder")
DREAM = NodeSpec("gymnast_world_model", "dream_node", "dream")
POLICY = NodeSpec("gymnast_policy", "policy_node", "policy")
REWARD = NodeSpec("gymnast_reward", "reward_node", "reward")
TRAINER = NodeSpec("gymnast_pipelines", "trainer_node", "trainer")

GRAPHS: dict[str, tuple[NodeSpec, ...]] = {
    # The real arm and camera; the policy node is the same one that runs in the dream.
    "real": (CAMERA, DRIVER, POLICY, REWARD, RECORDER),
    # The dream stands in for camera and arm; the trainer does test-time training in it.
    "dream": (DREAM, POLICY, REWARD, TRAINER, RECORDER),
    # Demonstrations for the dataset.
    "teleop": (CAMERA, DRIVER, TELEOP, RECORDER),
}


def default_params_file() -> Path:
    """config/gymnast.yaml from the installed share directory, else from the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("gymnast_bringup")) / "config" / "gymnast.yaml"
        if installed.exists():
            return installed
    except (ImportError, LookupError, OSError):  # not installed with colcon, or no AMENT_PREFIX_PATH
        pass
    return PACKAGE_DIR / "config" / "gymnast.yaml"


def graph_nodes(graph: str) -> tuple[NodeSpec, ...]:
    if graph not in GRAPHS:
        raise ValueError(f"unknown graph {graph!r}; choose one of {', '.join(GRAPHS)}")
    return GRAPHS[graph]


def launch_description(graph: str):
    """For the launch files: the graph's nodes as launch_ros Nodes, with a `params_file` argument."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    params = LaunchConfiguration("params_file")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=str(default_params_file()),
                              description="Parameters of every node, keyed by node name"),
        *(Node(package=n.package, executable=n.executable, name=n.name, parameters=[params], output="screen")
          for n in graph_nodes(graph)),
    ])


def node_command(node: NodeSpec, params_file: Path, overrides: Mapping[str, str]) -> list[str]:
    """`python -m <module of the console script> --ros-args ...`: no dependence on where scripts were installed."""
    scripts = importlib.metadata.entry_points(group="console_scripts", name=node.executable)
    if not scripts:
        raise ValueError(f"{node.package} has no executable {node.executable!r}; run scripts/bootstrap.sh")
    module = next(iter(scripts)).value.split(":")[0]
    args = [sys.executable, "-m", module, "--ros-args", "-r", f"__node:={node.name}", "--params-file", str(params_file)]
    for key, value in overrides.items():
        args += ["-p", f"{key}:={value}"]
    return args


def parse_overrides(args: Sequence[str], nodes: Sequence[NodeSpec]) -> dict[str, dict[str, str]]:
    """`node.param:=value` arguments (ros2 launch syntax) -> {node: {param: value}}."""
    names = {n.name for n in nodes}
    overrides: dict[str, dict[str, str]] = {name: {} for name in names}
    for arg in args:
        key, sep, value = arg.partition(":=")
        node, dot, param = key.partition(".")
        if not sep or not dot or node not in names:
            raise ValueError(f"bad override {arg!r}: write <node>.<parameter>:=<value> with node one of {', '.join(sorted(names))}")
        overrides[node][param] = value
    return overrides


def die_with_parent() -> None:
    """In a child before exec: SIGINT (a clean node shutdown) when the launcher dies, so a
    launcher that crashes or is killed leaves no nodes running on the domain. Linux only."""
    # A launcher started in the background by a shell has SIGINT ignored, and children inherit
    # that through exec; the node must be able to receive the signal arranged here.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)


def start_graph(graph: str, params_file: Path | None = None, args: Sequence[str] = (),
                env: Mapping[str, str] | None = None, log_dir: Path | None = None) -> dict[str, subprocess.Popen]:
    """Start every node of `graph` as its own process under loopback-only DDS; with `log_dir`,
    each node's output goes to <log_dir>/<node>.log instead of this terminal."""
    nodes = graph_nodes(graph)
    params_file = Path(params_file or default_params_file())
    if not params_file.exists():
        raise FileNotFoundError(f"params file {params_file} not found")
    overrides = parse_overrides(args, nodes)
    child_env = loopback_ros_env(dict(env if env is not None else os.environ))
    processes = {}
    for node in nodes:
        output = None
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            output = open(Path(log_dir) / f"{node.name}.log", "w")  # noqa: SIM115 - the child owns it
        processes[node.name] = subprocess.Popen(node_command(node, params_file, overrides[node.name]), env=child_env,
                                                stdout=output, stderr=subprocess.STDOUT if output else None,
                                                preexec_fn=die_with_parent)
        if output is not None:
            output.close()
    return processes


def stop_graph(processes: Mapping[str, subprocess.Popen], timeout: float = 10.0) -> None:
    """SIGINT (nodes shut down cleanly: torque off, partial episodes discarded), then kill stragglers."""
    for proc in processes.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for proc in processes.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: Sequence[str]) -> None:
    """gymnast launch <real|dream|teleop> [params_file:=FILE] [node.param:=value ...]"""
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: gymnast launch <{'|'.join(GRAPHS)}> [params_file:=FILE] [node.param:=value ...]")
        return
    params = [a.partition(":=")[2] for a in argv[1:] if a.startswith("params_file:=")]
    processes = start_graph(argv[0], Path(params[0]) if params else None,
                            [a for a in argv[1:] if not a.startswith("params_file:=")])
    print(f"gymnast launch {argv[0]}: {', '.join(f'{n} (pid {p.pid})' for n, p in processes.items())}; Ctrl-C stops")
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = {n: p.returncode for n, p in processes.items() if p.poll() is not None}
        print(f"gymnast launch: node exited: {dead}; stopping the graph", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        stop_graph(processes)
