from setuptools import find_packages, setup

package_name = "gymnast_pipelines"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="World-Gymnast maintainers",
    maintainer_email="maintainers@world-gymnast.dev",
    description="Jobs over the world model, policy and judge together: RL, the benchmark, the judge's training and calibration.",
    license="Apache-2.0",
    entry_points={"console_scripts": [
        "trainer_node = gymnast_pipelines.trainer_node:main",
    ]},
)
