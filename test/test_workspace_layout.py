"""Every package is a proper ROS 2 package that also installs with pip."""

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON_PACKAGES = ["gymnast_core", "gymnast_world_model", "gymnast_policy", "gymnast_reward", "gymnast_robot", "gymnast_pipelines", "gymnast_bringup"]


@pytest.mark.parametrize("name", PYTHON_PACKAGES)
def test_ament_python_package(name):
    pkg = ROOT / "src" / name
    manifest = ET.parse(pkg / "package.xml").getroot()
    assert manifest.get("format") == "3"
    assert manifest.findtext("name") == name
    assert manifest.find("export/build_type").text == "ament_python"
    assert (pkg / "resource" / name).is_file(), "ament index marker"
    assert (pkg / name / "__init__.py").is_file()
    setup = ast.parse((pkg / "setup.py").read_text())
    text = ast.unparse(setup)
    assert "share/ament_index/resource_index/packages" in text and "package.xml" in text
    assert f"package_name = '{name}'" in text


def test_interfaces_package_is_ament_cmake_with_rosidl():
    pkg = ROOT / "src" / "gymnast_interfaces"
    manifest = ET.parse(pkg / "package.xml").getroot()
    assert manifest.find("export/build_type").text == "ament_cmake"
    assert manifest.findtext("member_of_group") == "rosidl_interface_packages"
    assert "rosidl_generate_interfaces" in (pkg / "CMakeLists.txt").read_text()


def test_generated_messages_import():
    from gymnast_interfaces.msg import ActionChunk, PolicyStatus

    assert "actions" in ActionChunk.get_fields_and_field_types()
    assert PolicyStatus.RUNNING == "running"


def test_torch_is_pinned_to_the_cpu_wheel_on_disk():
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch")]
    assert pins == ["torch==2.13.0"]
