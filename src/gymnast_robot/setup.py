from setuptools import find_packages, setup

package_name = "gymnast_robot"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/urdf", ["urdf/wx250s.urdf"]),
        (f"share/{package_name}/rviz", ["rviz/gymnast.rviz"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="World-Gymnast maintainers",
    maintainer_email="maintainers@world-gymnast.dev",
    description="WidowX driver (interbotix, dynamixel, mock backends), camera, teleop, episode recorder, URDF and RViz config.",
    license="Apache-2.0",
    entry_points={"console_scripts": [
        "camera_node = gymnast_robot.camera_node:main",
        "widowx_driver_node = gymnast_robot.widowx_driver_node:main",
        "teleop_node = gymnast_robot.teleop_node:main",
        "recorder_node = gymnast_robot.recorder_node:main",
    ]},
)
