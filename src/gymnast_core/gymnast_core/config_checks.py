"""Checks of a command's whole config, run before any work starts.

A config dataclass states its own rules in `problems()`, which yields (field, reason) for each
value it cannot run with. `check_config` walks the nested configs, so a rule is written once
(in `GRPOConfig`, say) and holds wherever that config is used; every problem is reported at
once, each named by its command-line flag. Output folders are checked for writability first,
so a command never finds out at the end, with its results computed, that it cannot save them.
"""

from __future__ import annotations

import tempfile
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Iterator

# Top-level fields that name folders a command writes into.
OUTPUT_FIELDS = ("out", "report")


class ConfigError(ValueError):
    """A config value no command can run with; the message names every such flag and why."""


def check_config(config: Any) -> None:
    """Raise ConfigError naming every flag that breaks its config's rules or an output folder that cannot be written."""
    problems = list(_problems(config, ""))
    problems += [problem for name in OUTPUT_FIELDS if (problem := _unwritable(config, name))]
    if problems:
        raise ConfigError("bad config:\n  " + "\n  ".join(problems))


def _problems(config: Any, prefix: str) -> Iterator[str]:
    own = getattr(config, "problems", None)
    if own is not None:
        for name, reason in own():
            yield f"--{prefix}{name} {getattr(config, name)!r}: {reason}"
    for item in fields(config):
        value = getattr(config, item.name)
        if is_dataclass(value):
            yield from _problems(value, f"{prefix}{item.name}.")


def _unwritable(config: Any, name: str) -> str | None:
    folder = getattr(config, name, None)
    if not isinstance(folder, str) or not folder:
        return None
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"--{name} {folder!r}: cannot write there ({type(exc).__name__}: {exc.strerror or exc})"
    return None


def at_least(config: Any, minimums: dict[str, float]) -> Iterator[tuple[str, str]]:
    """(field, reason) for each of `config`'s fields below its minimum."""
    for name, minimum in minimums.items():
        if getattr(config, name) < minimum:
            yield name, f"must be at least {minimum:g}"
