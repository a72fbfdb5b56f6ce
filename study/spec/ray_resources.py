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

from typing import Annotated, Any, Optional

from pydantic import Field, Strict

from study.spec.schema import Section, integer, says, validate


def number(above: str) -> Any:
    """A number `above` ('> 0' or '>= 0'), as a float; None leaves the flag's (or Ray's) default."""
    bound = {"gt" if above == "> 0" else "ge": 0}
    return Optional[Annotated[float, Strict(), Field(**bound), says(f"{{value}} must be a number {above}")]]  # noqa: UP007


class RayResources(Section):
    """Per-worker Ray resources from the spec; None leaves the flag's (or Ray's) default."""

    shape = ("must be a mapping with keys workers, cpus_per_worker, gpus_per_worker, max_restarts, "
             "e.g. {cpus_per_worker: 2, gpus_per_worker: 1}")
    workers: Optional[integer(1)] = None  # noqa: UP007
    cpus_per_worker: number("> 0") = None
    gpus_per_worker: number(">= 0") = None
    max_restarts: Optional[integer(-1)] = None  # noqa: UP007


def parse_ray_resources(source: str, raw: Any) -> RayResources:
    """The `ray` mapping, validated key by key; an empty RayResources when absent."""
    return RayResources() if raw is None else validate(RayResources, raw, source, at=("ray",))
