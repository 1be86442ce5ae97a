"""ros2 launch gymnast_bringup real.launch.py [params_file:=FILE] (same graph as `gymnast launch real`)."""

from gymnast_bringup.graph import launch_description


def generate_launch_description():
    return launch_description("real")
