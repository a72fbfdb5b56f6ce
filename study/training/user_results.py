"""What your training code reports, as the TrialResult every other executor returns (no Keras here).

Your code's final metrics keep their names, except the four a Keras trial reports per epoch, which
become the kept model's columns of the trial table (study.analysis.runs):

    val_accuracy -> final_val_accuracy   (required: the study's metric)
    val_loss     -> final_val_loss       accuracy -> final_accuracy     loss -> final_loss

`test_accuracy`, `test_loss`, `params`, `best_epoch` and `epochs_run` are columns already; a name
given as `final_*` is taken as it is (and wins over its short form). From the epochs reported on the
way: `best_val_accuracy` (the best val_accuracy seen, the final one included), `last_*` (the last
finite epoch's values, else the final ones) and `epochs_run` (the epochs reported). A non-finite
val_accuracy, val_loss or loss (final, or a reported epoch's loss) makes the trial `diverged`,
recorded with its finite metrics only, as a Keras trial that diverged is.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from study.core.status import TrialStatus
from study.training.results import TrialResult

PRIMARY = "val_accuracy"
RENAMED = {"val_accuracy": "final_val_accuracy", "val_loss": "final_val_loss", "accuracy": "final_accuracy",
           "loss": "final_loss"}
EXAMPLE = "{'val_accuracy': 0.97, 'test_accuracy': 0.96}"


FINAL_ONLY = ("final_", "best_", "last_", "test_")  # prefixes of names a script logs once, at the end
FINAL_NAMES = ("params", "epochs_run", "wall_time_s")


def is_final_only(name: str) -> bool:
    """Whether a metric a script logged is a final result, not one of its epochs' metrics."""
    return name.startswith(FINAL_ONLY) or name in FINAL_NAMES


class ResultError(ValueError):
    """The code's metrics cannot be recorded (not a dict of numbers, or no val_accuracy): the trial failed."""


@dataclass
class UserTrialResult(TrialResult):
    """A TrialResult whose epochs are whatever the code reported (not necessarily a `loss` each epoch)."""

    @property
    def epochs_run(self) -> int:
        return max((len(values) for values in self.history.values()), default=0)


def metric_values(metrics: Any, who: str) -> dict[str, float]:
    """`metrics` as name -> float; ResultError naming the first entry that is not a number."""
    if not isinstance(metrics, Mapping):
        raise ResultError(f"{who} returned {type(metrics).__name__}; it must return a dict of final metrics, "
                          f"e.g. {EXAMPLE}")
    out = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise ResultError(f"{who}: metric name {name!r} must be a non-empty string")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ResultError(f"{who}: metric {name!r} is {value!r} ({type(value).__name__}); metrics are numbers")
        out[name] = float(value)
    return out


def final_metrics(returned: Mapping[str, float], history: Mapping[str, list[float]], who: str
                  ) -> tuple[dict[str, float], bool]:
    """The trial's final metrics (see the module doc) and whether it diverged."""
    final = {RENAMED.get(name, name): value for name, value in returned.items() if not name.startswith("final_")}
    final.update({name: value for name, value in returned.items() if name.startswith("final_")})
    if "final_val_accuracy" not in final:
        raise ResultError(f"{who} reported no {PRIMARY} (the study's metric) among its final metrics "
                          f"({', '.join(sorted(returned)) or 'none'}): return or log it, e.g. {EXAMPLE}")
    watched = [final.get(f"final_{name}") for name in ("val_accuracy", "val_loss", "loss")]
    diverged = any(v is not None and not math.isfinite(v) for v in watched) or \
        any(not math.isfinite(v) for v in history.get("loss", []))
    reported = [v for v in history.get(PRIMARY, []) if math.isfinite(v)]
    if math.isfinite(final["final_val_accuracy"]):
        reported.append(final["final_val_accuracy"])
    if reported:
        final.setdefault("best_val_accuracy", max(reported))
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        values = [v for v in history.get(name, []) if math.isfinite(v)]
        if values:
            final.setdefault(f"last_{name}", values[-1])
        elif f"final_{name}" in final:
            final.setdefault(f"last_{name}", final[f"final_{name}"])
    final.setdefault("epochs_run", float(max((len(v) for v in history.values()), default=0)))
    return {name: value for name, value in final.items() if math.isfinite(value)}, diverged


def user_result(config: Any, returned: Mapping[str, float], history: dict[str, list[float]], seconds: float,
                stopped_by_hook: bool, who: str) -> UserTrialResult:
    final, diverged = final_metrics(returned, history, who)
    status = TrialStatus.DIVERGED if diverged else TrialStatus.COMPLETED
    return UserTrialResult(config=config, status=status.value, history=history, final=final, wall_time_s=seconds,
                           stopped_by_hook=stopped_by_hook)
