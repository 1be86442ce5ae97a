"""One description of the graphs: launch files, `gymnast launch` and the params YAML agree with the nodes."""

import ast
import dataclasses
import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gymnast_bringup.graph import GRAPHS, PACKAGE_DIR, default_params_file, node_command, parse_overrides

NODES = {node.name: node for nodes in GRAPHS.values() for node in nodes}


def node_config(node):
    module = importlib.import_module(node_command(node, Path("p.yaml"), {})[2])
    assert callable(module.main)
    configs = [v for k, v in vars(module).items() if k.endswith("NodeConfig") and dataclasses.is_dataclass(v)]
    assert len(configs) == 1, f"{module.__name__} should define one *NodeConfig"
    return configs[0]()


def assert_fields(config, params, where):
    for key, value in params.items():
        assert hasattr(config, key), f"{where}.{key} is not a parameter of {type(config).__name__}"
        if isinstance(value, dict):
            assert_fields(getattr(config, key), value, f"{where}.{key}")


def test_params_yaml_is_keyed_by_node_name_and_names_only_declared_parameters():
    params = yaml.safe_load(default_params_file().read_text())
    assert set(params) == set(NODES)
    for name, node in NODES.items():
        assert_fields(node_config(node), params[name]["ros__parameters"], name)


def test_launch_files_build_the_graphs_of_the_same_description():
    launch_dir = PACKAGE_DIR / "launch"
    for graph in GRAPHS:
        tree = ast.parse((launch_dir / f"{graph}.launch.py").read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "launch_description"]
        assert [c.args[0].value for c in calls] == [graph]
    assert "robot_state_publisher" in (launch_dir / "rviz.launch.py").read_text()


def test_overrides_use_ros2_launch_syntax_and_bad_ones_are_named():
    nodes = GRAPHS["dream"]
    assert parse_overrides(["policy.temperature:=0.5"], nodes)["policy"] == {"temperature": "0.5"}
    for bad in ("policy.temperature=0.5", "camera.device:=/dev/video0", "temperature:=1"):
        with pytest.raises(ValueError, match="bad override"):
            parse_overrides([bad], nodes)
    command = node_command(NODES["policy"], Path("p.yaml"), {"temperature": "0.5"})
    assert command[1:3] == ["-m", "gymnast_policy.policy_node"]
    assert command[-3:] == ["p.yaml", "-p", "temperature:=0.5"] and "__node:=policy" in command


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
def test_node_processes_die_with_a_launcher_that_is_killed():
    # A launcher that crashes before stop_graph must not leave nodes running on the domain.
    launcher = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         "from gymnast_bringup.graph import die_with_parent\n"
         "child = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent)\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    child_pid = int(launcher.stdout.readline())
    launcher.kill()
    launcher.wait()
    deadline = time.monotonic() + 10
    while running(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(child_pid), "the node process outlived its launcher"


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan waits for whoever reaps it here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
