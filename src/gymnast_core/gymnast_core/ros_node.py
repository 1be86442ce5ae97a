"""What every gymnast node shares: dataclass configs as declared parameters, and `spin_node`.

A node's settings are the same frozen dataclass configs the CLI uses (DreamConfig, JudgeConfig,
GRPOConfig, ...), declared as ROS parameters with dotted names, so one params YAML keyed by node
name (nav2 style) and `gymnast <command> --field value` describe the same thing.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import typing
from typing import Any, Callable, TypeVar

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from gymnast_core.ros_env import loopback_ros_env

ConfigT = TypeVar("ConfigT")
_SCALARS = (bool, int, float, str)


def declare_config(node: Node, config: ConfigT, prefix: str = "") -> ConfigT:
    """Declare every scalar field of `config` (recursing into nested dataclasses) as a parameter
    named `prefix.field`, defaulting to its value; return the config rebuilt from the parameters.
    Fields of other types (tuples, lists, None) are not plain ROS parameters: they keep their
    defaults, and the node's log names them."""
    config, fixed = _declare(node, config, prefix)
    if fixed:
        node.get_logger().info(f"not ROS parameters (tuples, lists or None), so they keep their defaults: {', '.join(fixed)}")
    return config


def _declare(node: Node, config: ConfigT, prefix: str) -> tuple[ConfigT, list[str]]:
    hints = typing.get_type_hints(type(config))
    values: dict[str, Any] = {}
    fixed: list[str] = []
    for field in dataclasses.fields(config):
        name = f"{prefix}.{field.name}" if prefix else field.name
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            values[field.name], nested = _declare(node, value, name)
            fixed += nested
        elif isinstance(value, _SCALARS):
            declared = node.declare_parameter(name, value).value
            kind = hints[field.name] if hints[field.name] in _SCALARS else type(value)
            try:
                # YAML writes 1e-5 as a string and 2 where 2.0 was meant; accept what converts.
                values[field.name] = kind(declared) if kind is not bool or isinstance(declared, bool) else declared
            except (TypeError, ValueError) as exc:
                raise ValueError(f"parameter {name!r}: expected {kind.__name__}, got {declared!r}") from exc
        else:
            fixed.append(name)
    return dataclasses.replace(config, **values), fixed


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None, threads: int = 4) -> None:
    """init (loopback-only DDS), build the node, spin it on a multi-threaded executor, shut down cleanly."""
    loopback_ros_env()
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    try:
        node = make_node()
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except KeyboardInterrupt:
        pass
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # A bad parameter, checkpoint or device: say which, instead of a traceback.
        print(f"{make_node.__qualname__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    finally:
        # Ctrl-C reaches a node twice, from the terminal and from `ros2 launch` (or `gymnast
        # launch`) passing it on: the second must not cut the clean-up (torque off) short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
