"""Shared names are written once in src/: every command, node and test takes them from gymnast_core.names."""

import ast
from pathlib import Path

from gymnast_core import names

SRC = Path(__file__).resolve().parents[2] / "src"


def literals_in_src() -> dict[object, list[str]]:
    """Every string and integer literal in src/**/*.py outside gymnast_core/names.py, with where it is."""
    found: dict[object, list[str]] = {}
    for path in SRC.rglob("*.py"):
        if path.name == "names.py" and path.parent.name == "gymnast_core":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
                found.setdefault(node.value, []).append(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


def test_every_shared_path_topic_and_seed_block_is_written_only_in_the_names_module():
    shared = {name: value for name, value in vars(names).items() if name.isupper()}
    values = [v for v in shared.values() if isinstance(v, (str, int))]
    values += list(names.COLLECT_SEED_BLOCKS.values())
    found = literals_in_src()
    # 0 starts every counter and 1_000_000 is also the Dynamixel baud rate: neither is a seed block there.
    repeated = {value: found[value] for value in values if value in found and value not in (0, names.EVAL_SEED_OFFSET)}
    assert not repeated, f"written again outside gymnast_core.names: {repeated}"
    train_blocks = [*names.COLLECT_SEED_BLOCKS.values(), names.RL_TASK_SEEDS, names.VALIDATION_SEEDS]
    assert len(set(train_blocks)) == len(train_blocks)  # no two 'train' purposes share a block


def test_config_files_in_src_take_topics_by_remapping_not_by_name():
    topics = [value for name, value in vars(names).items() if name.endswith(("_TOPIC", "_ACTION", "_SERVICE"))]
    found = {f"{path.relative_to(SRC)}: {topic}" for path in SRC.rglob("*") if path.suffix in (".rviz", ".yaml", ".xml", ".urdf")
             for topic in topics if topic in path.read_text()}
    assert not found


def test_tests_take_topics_from_the_names_module_too():
    topics = {value for name, value in vars(names).items() if name.endswith(("_TOPIC", "_ACTION", "_SERVICE"))}
    tests = SRC.parent / "test"
    found = [f"{path.relative_to(tests)}:{node.lineno}" for path in tests.rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant) and node.value in topics]
    assert not found
