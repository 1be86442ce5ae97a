"""One description of the graphs: launch files, `gymnast launch` and the params YAML agree with the nodes."""

import ast
import dataclasses
import importlib
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
