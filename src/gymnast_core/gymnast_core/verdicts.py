"""Counting a judge's verdicts: the one helper every rate, check and gate goes through.

A judge may not decide (an API outage, an answer without a score): such a verdict is unknown and
is left out of every rate, never counted as a failure. When too few verdicts are known to say
anything, that is its own outcome, `JudgeUnavailableError`, naming the cause the judge gave, so
that no check reads an outage as reward hacking and a rerun retries once the judge is back.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from gymnast_core.protocols import Verdict


class JudgeUnavailableError(RuntimeError):
    """Too few of the judge's verdicts were known to compute a rate; nothing was concluded."""


def unknown_cause(verdict: Verdict) -> str:
    """The most common reason the judge gave for its unknown verdicts."""
    reasons = Counter(r.removeprefix("unknown:").strip() for r, k in zip(verdict.rationales, verdict.known) if not k)
    if not reasons:
        return "every verdict is known"
    reason, count = reasons.most_common(1)[0]
    return f"{reason} ({count} of {int((~verdict.known).sum())} unknown verdicts)"


def known_rates(values: np.ndarray, verdict: Verdict, keys: Sequence[str], min_known: float) -> dict[str, float]:
    """Per key (task), the mean of `values` [N] over the episodes whose verdict is known.

    Raises JudgeUnavailableError when, for some key, fewer than `min_known` of its verdicts are known.
    """
    values, keys = np.asarray(values, dtype=np.float64), np.asarray(keys)
    if len(values) != len(verdict.known) or len(keys) != len(verdict.known):
        raise ValueError(f"{len(values)} values and {len(keys)} keys for {len(verdict.known)} verdicts")
    rates = {}
    for key in dict.fromkeys(keys.tolist()):
        rows = keys == key
        known = verdict.known[rows]
        if known.mean() < min_known:
            raise JudgeUnavailableError(f"judge unavailable: {int(known.sum())} of {int(rows.sum())} verdicts on {key} "
                                        f"are known (at least {min_known:.0%} needed); cause: {unknown_cause(verdict)}")
        rates[key] = float(values[rows][known].mean())
    return rates
