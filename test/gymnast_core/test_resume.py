"""The one config comparison for resume, the redacted config.json, and metrics logs without duplicates."""

import csv
import json
from dataclasses import dataclass, field

import pytest

from gymnast_core.config_checks import ConfigError
from gymnast_core.resume import differences, record_config, rewind_rows


@dataclass
class Inner:
    lr: float = 1e-3
    api_key: str = ""


@dataclass
class Run:
    dataset: str = "data"
    steps: int = 10
    threads: int = 2
    inner: Inner = field(default_factory=Inner)


def test_a_resume_with_a_changed_lr_names_the_field(tmp_path):
    record_config(tmp_path, Run(), "gymnast test", resuming=False)
    with pytest.raises(ConfigError, match=r"inner.lr: 0.001 -> 0.01") as info:
        record_config(tmp_path, Run(inner=Inner(lr=1e-2)), "gymnast test", resuming=True)
    assert "--out" in str(info.value)
    with pytest.raises(ConfigError, match=r"dataset: 'data' -> 'other'; steps: 10 -> 20"):
        record_config(tmp_path, Run(dataset="other", steps=20), "gymnast test", resuming=True)


def test_settings_that_do_not_change_results_or_are_allowed_resume_with_a_note(tmp_path, capsys):
    record_config(tmp_path, Run(), "gymnast test", resuming=False)
    record_config(tmp_path, Run(threads=1, steps=20), "gymnast test", resuming=True, may_change=("steps",))
    assert "threads: 2 -> 1" in capsys.readouterr().out
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 20
    # A fresh start (nothing to resume) records the new settings whatever the old file said.
    record_config(tmp_path, Run(dataset="other"), "gymnast test", resuming=False)
    assert json.loads((tmp_path / "config.json").read_text())["dataset"] == "other"


def test_the_api_key_is_absent_from_config_json(tmp_path):
    record_config(tmp_path, Run(inner=Inner(api_key="sk-secret-123")), "gymnast test", resuming=False)
    text = (tmp_path / "config.json").read_text()
    assert "sk-secret-123" not in text and json.loads(text)["inner"]["api_key"] == "<redacted>"
    # Another key (or none) on resume is not a different run.
    record_config(tmp_path, Run(), "gymnast test", resuming=True)


def test_differences_lists_added_and_removed_settings():
    assert differences({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"d": 3}}) == ["b.c: 2 -> '(not set)'",
                                                                             "b.d: '(not set)' -> 3"]


def test_rewound_logs_keep_each_row_once(tmp_path):
    with open(tmp_path / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["update", "reward"])
        writer.writeheader()
        writer.writerows({"update": u, "reward": u / 10} for u in (1, 2, 3))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in (200, 400, 600)))
    rewind_rows(tmp_path / "metrics.csv", "update", 2)
    rewind_rows(tmp_path / "metrics.jsonl", "step", 400)
    rewind_rows(tmp_path / "absent.csv", "update", 0)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        assert [row["update"] for row in csv.DictReader(handle)] == ["1", "2"]
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [200, 400]
    # A run killed before its header reached the disk leaves an empty file: it is removed, so the
    # rerun writes a header again (it once wrote 40 rows under none).
    (tmp_path / "empty.csv").write_text("")
    rewind_rows(tmp_path / "empty.csv", "update", -1)
    assert not (tmp_path / "empty.csv").exists()
