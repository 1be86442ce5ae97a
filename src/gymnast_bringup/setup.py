from glob import glob

from setuptools import find_packages, setup

package_name = "gymnast_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/config", ["config/gymnast.yaml"]),
        (f"share/{package_name}/launch", sorted(glob("launch/*.launch.py"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="World-Gymnast maintainers",
    maintainer_email="maintainers@world-gymnast.dev",
    description="The gymnast CLI, launch files and parameters.",
    license="Apache-2.0",
    entry_points={"console_scripts": [
        "gymnast = gymnast_bringup.cli:main",
    ]},
)
