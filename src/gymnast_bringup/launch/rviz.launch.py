"""ros2 launch gymnast_bringup rviz.launch.py: the wx250s model driven by the arm's joint states, and the camera
(or dream) image, in RViz. Run it beside real.launch.py or dream.launch.py (nav2_bringup keeps RViz separate too).

The RViz config subscribes to the relative topic `image`, remapped here to the camera topic (as with image_view)."""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch_ros.actions import Node

from gymnast_core.names import IMAGE_TOPIC, JOINT_STATES_TOPIC


def generate_launch_description():
    robot = Path(get_package_share_directory("gymnast_robot"))
    urdf = (robot / "urdf" / "wx250s.urdf").read_text()
    return LaunchDescription([
        Node(package="robot_state_publisher", executable="robot_state_publisher", name="robot_state_publisher",
             parameters=[{"robot_description": urdf}], remappings=[("joint_states", JOINT_STATES_TOPIC)]),
        Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", str(robot / "rviz" / "gymnast.rviz")],
             remappings=[("image", IMAGE_TOPIC)]),
    ])
