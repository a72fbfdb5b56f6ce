"""The `adaptive` design of a study spec: seeds spent in rounds, only where a target is still open.

```yaml
seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]   # the seed values, in the order the rounds use them
adaptive:
  start_seeds: 2      # every config runs the first 2 seeds
  max_seeds: 10       # no config runs more than the first 10
  margin_pp: 0.5      # a difference smaller than this (percentage points) is no difference worth a seed
  alpha: 0.05         # each decision is wrong with probability at most this, however the rounds went
  spending: pocock    # how alpha is spent over the looks: pocock (default) | obrien_fleming
```
After each round, study.analysis.sequential decides each target (main effects, lesson claims, top-group
membership); the next round gives one more seed to the configs of the targets still open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from study.config.factors import is_number
from study.core.errors import SpecError
from study.spec.reading import int_value, reject_unknown

ADAPTIVE_KEYS = ("start_seeds", "max_seeds", "margin_pp", "alpha", "spending")
SPENDING = ("pocock", "obrien_fleming")  # study.analysis.stats.repeated.SPENDING


@dataclass(frozen=True)
class AdaptiveSpec:
    start_seeds: int = 2
    max_seeds: int = 10
    margin_pp: float = 0.5
    alpha: float = 0.05
    spending: str = "pocock"


def parse_adaptive(source: str, raw: Any, seeds: tuple[int, ...], design: str,
                   confirm: Any) -> AdaptiveSpec | None:
    """The `adaptive` mapping, validated against the spec's seeds and design; None when absent."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError(source, "adaptive", "must be a mapping with keys start_seeds, max_seeds, margin_pp, alpha, "
                                            "e.g. {start_seeds: 2, max_seeds: 10, margin_pp: 0.5, alpha: 0.05}")
    reject_unknown(source, "adaptive", raw, ADAPTIVE_KEYS)
    start = int_value(source, "adaptive.start_seeds", raw.get("start_seeds", 2), low=2)
    most = int_value(source, "adaptive.max_seeds", raw.get("max_seeds", len(seeds)), low=2)
    if most < start:
        raise SpecError(source, "adaptive.max_seeds", f"{most} is below start_seeds ({start})")
    if most > len(seeds):
        raise SpecError(source, "adaptive.max_seeds", f"{most} is more than the {len(seeds)} seed(s) in `seeds`; list "
                                                      f"{most} seed values there (the rounds take them in order)")
    margin = raw.get("margin_pp", 0.5)
    if not is_number(margin) or not 0 < margin < 100:
        raise SpecError(source, "adaptive.margin_pp", f"{margin!r} must be a number of percentage points in (0, 100)")
    alpha = raw.get("alpha", 0.05)
    if not is_number(alpha) or not 0 < alpha < 0.5:
        raise SpecError(source, "adaptive.alpha", f"{alpha!r} must be a number in (0, 0.5)")
    spending = raw.get("spending", "pocock")
    if spending not in SPENDING:
        raise SpecError(source, "adaptive.spending", f"{spending!r} is not allowed; allowed values: {', '.join(SPENDING)}")
    if confirm is not None:
        raise SpecError(source, "adaptive", "cannot be combined with `confirm`: the adaptive rounds already re-measure "
                                            "the top of the leaderboard (its top-group targets) on more seeds; "
                                            "remove one of the two")
    if design != "full_factorial":
        raise SpecError(source, "adaptive", f"needs design full_factorial (design is {design}): its targets are "
                                            "contrasts over every combination of the other factors' levels")
    return AdaptiveSpec(start, most, float(margin), float(alpha), spending)


def refuse_in_tuning(source: str, raw: Any) -> None:
    """A tuning spec with `adaptive`: one clear line instead of "unknown key"."""
    if isinstance(raw, dict) and "adaptive" in raw:
        raise SpecError(source, "adaptive", "is not supported in a tuning spec: its sampler already decides where "
                                            "the next trial goes, and its retrain_seeds are a fixed comparison; "
                                            "use `adaptive` in an ablation spec (factors and seeds), or remove it")
