"""`--ray`: the command line's Ray options as a RayCluster, connected and checked before any store is touched."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from study.core.errors import SpecError
from study.execution.ray_cluster import RayCluster, RayPlan, require_ray
from study.queue.storage import default_storage_url
from study.spec.ray_resources import RayResources
from study.tracking.store import default_tracking_uri

RAY_ONLY = ("cpus_per_worker", "gpus_per_worker", "max_restarts")


def ray_plan(args: argparse.Namespace, spec: RayResources = RayResources()) -> RayPlan | None:
    """The plan `--ray` and its options describe, each flag over the spec's `ray:` section (`spec`) over the
    defaults; None without `--ray` (options that need it are refused; the spec's section then does nothing)."""
    if getattr(args, "ray", None) is None:
        for name in RAY_ONLY:
            if getattr(args, name, None) is not None:
                raise SpecError("--" + name.replace("_", "-"), name, "applies to Ray workers only; add --ray [ADDRESS]")
        return None
    plan = RayPlan(address=args.ray, workers=_first(args.workers, spec.workers),
                   cpus=_first(args.cpus_per_worker, spec.cpus_per_worker, 1.0),
                   gpus=_first(args.gpus_per_worker, spec.gpus_per_worker, 0.0),
                   max_restarts=_first(args.max_restarts, spec.max_restarts, 3))
    if plan.cpus <= 0 or plan.gpus < 0 or plan.max_restarts < -1:
        raise SpecError("--ray", "resources", f"--cpus-per-worker {plan.cpus:g} must be > 0, --gpus-per-worker "
                                              f"{plan.gpus:g} >= 0, --max-restarts {plan.max_restarts} >= -1")
    return plan


def _first(*values):
    """The first value that is set (flag, spec, default)."""
    return next((v for v in values if v is not None), None)


@contextmanager
def ray_cluster(args: argparse.Namespace, spec: RayResources = RayResources()) -> Iterator[RayCluster | None]:
    """None without `--ray`. With an address, connect now: a cluster with nodes other than this machine
    refuses SQLite stores (exit 2) before anything is created. A local instance starts with the first worker."""
    plan = ray_plan(args, spec)
    if plan is None:
        yield None
        return
    require_ray()
    cluster = RayCluster(plan)
    try:
        if not cluster.local:
            cluster.connect()
            tracking = args.tracking_uri or default_tracking_uri()
            cluster.check_stores(storage=args.storage or default_storage_url(tracking), tracking_uri=tracking)
        yield cluster
    finally:
        cluster.close()
