"""What a run folder remembers of the settings that filled it, and the one comparison that every
resume (and the bench's cache of arms) makes against them.

A rerun of an interrupted command resumes from its folder. Without this check a rerun with
another dataset or learning rate would quietly continue the old run under the new name.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

from gymnast_core.atomic import SECRET_FIELDS, atomic_open, config_as_json, read_json, write_json
from gymnast_core.config_checks import ConfigError

# Settings, at any depth, that do not change what a run computes: where it writes, what is run,
# where and how fast it computes, how often it saves, the credentials it uses.
NOT_RESULT_SETTINGS = ("command", "out", "report", "arms", "seeds", "threads", "workers", "device", "max_minutes",
                       "checkpoint_every") + SECRET_FIELDS


def flat_settings(settings: dict[str, Any], ignore: Iterable[str] = (), prefix: str = "") -> dict[str, Any]:
    """Nested settings as {"grpo.lr": 5e-05, ...}, leaving out keys named in `ignore` at any depth."""
    ignore = tuple(ignore)
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if key in ignore:
            continue
        if isinstance(value, dict):
            flat |= flat_settings(value, ignore, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(saved: dict[str, Any], current: dict[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """'name: saved -> current' for every setting that differs, outside `ignore`."""
    old, new = flat_settings(saved, ignore), flat_settings(current, ignore)
    missing = "(not set)"
    return [f"{name}: {old.get(name, missing)!r} -> {new.get(name, missing)!r}"
            for name in sorted(old.keys() | new.keys()) if old.get(name, missing) != new.get(name, missing)]


def record_config(folder: str | Path, config: Any, command: str, resuming: bool, may_change: Iterable[str] = ()) -> None:
    """Write `folder/config.json`; when resuming, first refuse settings that differ from the recorded ones.

    `may_change` names the settings this command can take up mid-run (a larger `updates`, say);
    changes to those, and to NOT_RESULT_SETTINGS, are printed and kept.
    """
    path = Path(folder) / "config.json"
    current = {"command": command, **config_as_json(config)}
    if resuming and path.exists():
        saved = read_json(path)
        refused = differences(saved, current, NOT_RESULT_SETTINGS + tuple(may_change))
        if refused:
            raise ConfigError(f"{folder} holds a `{command}` run started with other settings ({'; '.join(refused)}). "
                              f"Rerun with the recorded settings ({path}) to resume it, or pass another --out "
                              f"(or delete {folder}) to start over.")
        changed = differences(saved, current)
        if changed:
            print(f"resuming {folder} with changed settings: {'; '.join(changed)}")
    write_json(path, current)


def rewind_rows(path: str | Path, key: str, last: int) -> None:
    """Drop the rows of a metrics log (.csv or .jsonl) whose `key` is past `last`: a resumed run
    writes them again, from the checkpoint it resumes, and each step must appear once."""
    path = Path(path)
    if not path.exists():
        return
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            header, rows = reader.fieldnames or [], [row for row in reader if int(row[key]) <= last]
        if not header:  # killed before its header reached the disk: the run writes a new file
            path.unlink()
            return
        with atomic_open(path, "w") as handle:
            writer = csv.DictWriter(handle, header)
            writer.writeheader()
            writer.writerows(rows)
    else:
        lines = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)[key] <= last]
        with atomic_open(path, "w") as handle:
            handle.write("".join(line + "\n" for line in lines))
