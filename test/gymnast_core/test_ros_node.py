"""declare_config: a node's dataclass config as ROS parameters, and what cannot be one."""

from dataclasses import dataclass, field

import pytest

from gymnast_core.ros_node import declare_config


@dataclass(frozen=True)
class Inner:
    checkpoint: str = "a.pt"
    sizes: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Outer:
    rate: float = 5.0
    steps: int = 3
    tasks: tuple[str, ...] = ("reach-v3",)
    inner: Inner = field(default_factory=Inner)


class FakeNode:
    """Parameters set from outside (a YAML file, `--ros-args -p`), and a log."""

    def __init__(self, overrides: dict):
        self.overrides, self.declared, self.logged = overrides, {}, []

    def declare_parameter(self, name, default):
        self.declared[name] = default
        return type("Parameter", (), {"value": self.overrides.get(name, default)})()

    def get_logger(self):
        return type("Logger", (), {"info": lambda _, message: self.logged.append(message)})()


def test_scalars_become_parameters_and_the_rest_is_named_in_the_log():
    node = FakeNode({"rate": "10", "inner.checkpoint": "b.pt"})
    config = declare_config(node, Outer())
    assert config == Outer(rate=10.0, inner=Inner(checkpoint="b.pt"))
    assert set(node.declared) == {"rate", "steps", "inner.checkpoint"}
    assert node.logged == ["not ROS parameters (tuples, lists or None), so they keep their defaults: tasks, inner.sizes"]


def test_a_parameter_of_the_wrong_type_names_itself():
    with pytest.raises(ValueError, match="parameter 'steps': expected int, got 'many'"):
        declare_config(FakeNode({"steps": "many"}), Outer())
