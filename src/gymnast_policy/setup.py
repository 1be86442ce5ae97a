from setuptools import find_packages, setup

package_name = "gymnast_policy"

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
    description="The VLA policy: action tokenizer, compact and Hugging Face backbones, SFT, GRPO and the policy node.",
    license="Apache-2.0",
    entry_points={"console_scripts": [
        "policy_node = gymnast_policy.policy_node:main",
    ]},
)
