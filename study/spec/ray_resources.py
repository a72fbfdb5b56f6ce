"""The `ray:` section of a spec: what each Ray worker gets when the study runs with `--ray`.

Why in the spec: a study that needs a GPU per worker needs it on every cluster it is submitted
to, so the requirement travels with the study; flags (`--cpus-per-worker`, ...) override it for
one run. The section does not turn Ray on: where to run stays the command's choice (`--ray ADDRESS`).

```yaml
ray:
  workers: 8             # Ray workers (default: as many as fit)
  cpus_per_worker: 2     # Ray's num_cpus per worker (default 1); also its math threads
  gpus_per_worker: 0.5   # Ray's num_gpus per worker (default 0)
  max_restarts: 3        # Ray restarts a dead worker this often (-1: always)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from study.config.factors import is_int, is_number
from study.core.errors import SpecError
from study.spec.reading import reject_unknown

RAY_KEYS = ("workers", "cpus_per_worker", "gpus_per_worker", "max_restarts")


@dataclass(frozen=True)
class RayResources:
    """Per-worker Ray resources from the spec; None leaves the flag's (or Ray's) default."""

    workers: int | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None
    max_restarts: int | None = None


def parse_ray_resources(source: str, raw: Any) -> RayResources:
    """The `ray` mapping, validated key by key; an empty RayResources when absent."""
    if raw is None:
        return RayResources()
    if not isinstance(raw, dict):
        raise SpecError(source, "ray", "must be a mapping with keys " + ", ".join(RAY_KEYS)
                        + ", e.g. {cpus_per_worker: 2, gpus_per_worker: 1}")
    reject_unknown(source, "ray", raw, RAY_KEYS)
    return RayResources(
        workers=_integer(source, raw, "workers", low=1),
        cpus_per_worker=_number(source, raw, "cpus_per_worker", positive=True),
        gpus_per_worker=_number(source, raw, "gpus_per_worker", positive=False),
        max_restarts=_integer(source, raw, "max_restarts", low=-1),
    )


def _integer(source: str, raw: dict, key: str, low: int) -> int | None:
    value = raw.get(key)
    if value is not None and (not is_int(value) or value < low):
        raise SpecError(source, f"ray.{key}", f"{value!r} must be an integer >= {low}")
    return value


def _number(source: str, raw: dict, key: str, positive: bool) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if not is_number(value) or (value <= 0 if positive else value < 0):
        raise SpecError(source, f"ray.{key}", f"{value!r} must be a number {'> 0' if positive else '>= 0'}")
    return float(value)
