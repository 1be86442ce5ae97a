"""ros2 launch gymnast_bringup dream.launch.py [params_file:=FILE] (same graph as `gymnast launch dream`)."""

from gymnast_bringup.graph import launch_description


def generate_launch_description():
    return launch_description("dream")
