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
from typing import Annotated, Any

from pydantic import Field, Strict, model_validator

from study.core.errors import SpecError
from study.spec.schema import Problem, Section, choice, integer, says

SPENDING = ("pocock", "obrien_fleming")  # study.analysis.stats.repeated.SPENDING


class AdaptiveKeys(Section):
    """The `adaptive` mapping as written: each key's own rule (the checks against the rest of the spec are
    `parse_adaptive`'s)."""

    shape = ("must be a mapping with keys start_seeds, max_seeds, margin_pp, alpha, spending, "
             "e.g. {start_seeds: 2, max_seeds: 10, margin_pp: 0.5, alpha: 0.05}")
    start_seeds: integer(2) = 2
    max_seeds: integer(2) | None = None  # None: every seed in `seeds`
    margin_pp: Annotated[float, Strict(), Field(gt=0, lt=100),
                         says("{value} must be a number of percentage points in (0, 100)")] = 0.5
    alpha: Annotated[float, Strict(), Field(gt=0, lt=0.5), says("{value} must be a number in (0, 0.5)")] = 0.05
    spending: choice(SPENDING) = "pocock"

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveKeys:
        if self.max_seeds is not None and self.max_seeds < self.start_seeds:
            raise Problem(f"{self.max_seeds} is below start_seeds ({self.start_seeds})", "max_seeds")
        return self


@dataclass(frozen=True)
class AdaptiveSpec:
    start_seeds: int = 2
    max_seeds: int = 10
    margin_pp: float = 0.5
    alpha: float = 0.05
    spending: str = "pocock"


def parse_adaptive(source: str, keys: AdaptiveKeys | None, seeds: tuple[int, ...], design: str,
                   confirm: object) -> AdaptiveSpec | None:
    """The validated `adaptive` mapping checked against the spec's seeds, design and confirm stage; None when
    absent."""
    if keys is None:
        return None
    most = len(seeds) if keys.max_seeds is None else keys.max_seeds
    if most < keys.start_seeds:  # max_seeds not written, too few seeds for the start
        raise SpecError(source, "adaptive.start_seeds", f"{keys.start_seeds} is more than the {len(seeds)} seed(s) "
                                                        "in `seeds`")
    if most > len(seeds):
        raise SpecError(source, "adaptive.max_seeds", f"{most} is more than the {len(seeds)} seed(s) in `seeds`; list "
                                                      f"{most} seed values there (the rounds take them in order)")
    if confirm is not None:
        raise SpecError(source, "adaptive", "cannot be combined with `confirm`: the adaptive rounds already re-measure "
                                            "the top of the leaderboard (its top-group targets) on more seeds; "
                                            "remove one of the two")
    if design != "full_factorial":
        raise SpecError(source, "adaptive", f"needs design full_factorial (design is {design}): its targets are "
                                            "contrasts over every combination of the other factors' levels")
    return AdaptiveSpec(keys.start_seeds, most, float(keys.margin_pp), float(keys.alpha), keys.spending)


def refuse_in_tuning(source: str, raw: Any) -> None:
    """A tuning spec with `adaptive`: one clear line instead of "unknown key"."""
    if isinstance(raw, dict) and "adaptive" in raw:
        raise SpecError(source, "adaptive", "is not supported in a tuning spec: its sampler already decides where "
                                            "the next trial goes, and its retrain_seeds are a fixed comparison; "
                                            "use `adaptive` in an ablation spec (factors and seeds), or remove it")
