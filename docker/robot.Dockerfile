# The robot computer: ROS 2 Kilted with the Interbotix driver's dependencies and this workspace,
# built with colcon. Build from the repository root:
#   docker build -f docker/robot.Dockerfile -t gymnast-robot .
FROM ros:kilted-ros-base

RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-pip python3-venv ros-kilted-launch-ros ros-kilted-rviz2 ros-kilted-xacro \
        ros-kilted-robot-state-publisher ros-kilted-joint-state-publisher \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /ws
COPY requirements.txt /ws/requirements.txt
# The robot runs the pip stack in a venv that can still see the system's ROS Python packages.
# torch==2.13.0 comes first from the CPU index (the compact VLA runs on the robot computer's CPU);
# from PyPI the same pin would fetch the multi-GB CUDA build. The rest then finds it satisfied.
RUN python3 -m venv --system-site-packages /opt/gymnast \
    && /opt/gymnast/bin/pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && /opt/gymnast/bin/pip install --no-cache-dir \
        $(grep -vE '^(ros-|catkin-pkg|#|$)' requirements.txt)
COPY colcon.meta /ws/colcon.meta
COPY src /ws/src
RUN . /opt/ros/kilted/setup.sh && . /opt/gymnast/bin/activate \
    && colcon --log-base /tmp/colcon-log build --metas colcon.meta --symlink-install

# Loopback-only DDS by default; a robot on a network sets its own range and domain at run time.
ENV ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=42
CMD ["bash", "-c", ". /opt/ros/kilted/setup.sh && . /ws/install/setup.sh && . /opt/gymnast/bin/activate && ros2 launch gymnast_bringup real.launch.py"]
