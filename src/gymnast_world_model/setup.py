from setuptools import find_packages, setup

package_name = "gymnast_world_model"

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
    description="The action-conditioned video world model (the dream): codec, dynamics, training, batched dream env and dream node.",
    license="Apache-2.0",
    entry_points={"console_scripts": [
        "dream_node = gymnast_world_model.dream_node:main",
    ]},
)
