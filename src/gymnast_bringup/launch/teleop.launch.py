"""ros2 launch gymnast_bringup teleop.launch.py [params_file:=FILE] (same graph as `gymnast launch teleop`)."""

from gymnast_bringup.graph import launch_description


def generate_launch_description():
    return launch_description("teleop")
