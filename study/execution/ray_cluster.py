"""The Ray cluster a study's workers run on (`--ray [ADDRESS]`): connect, check the stores, size the workers.

Ray is an optional dependency (`pip install -e '.[ray]'`): it is imported only here and in
study.execution.ray_workers, inside functions, when `--ray` is given.

Exactly-once stays the queue's job: Ray only places and restarts the worker processes.
Every store a worker writes to must therefore be reachable from every node; a SQLite file
(queue or MLflow) is only that when every node is this machine.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from study.core.errors import InputError
from study.core.text import redact_url

LOG = logging.getLogger(__name__)
LOCAL = "local"  # ray.init's address for "start a new instance on this machine"
NAMESPACE = "study"  # the workers are named actors in this namespace (ray.get_actor finds them)
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2  # workers pass only small objects (specs, summaries, log lines)
NETWORK_SCHEMES = ("http://", "https://", "postgresql", "mysql", "mssql", "oracle", "databricks")


class RayError(InputError):
    """Ray missing, unreachable, too small, or a store its nodes cannot share (exit 2)."""


@dataclass(frozen=True)
class RayPlan:
    """What `--ray` asks for: where, and what each worker (one Ray actor) gets."""

    address: str = LOCAL  # as ray.init takes it: host:port, ray://host:10001, auto, or local (a new instance)
    workers: int | None = None  # None: as many as fit on the cluster's nodes
    cpus: float = 1.0  # per worker (Ray's num_cpus); also its math threads unless --threads
    gpus: float = 0.0  # per worker (Ray's num_gpus: Ray sets CUDA_VISIBLE_DEVICES for each actor)
    max_restarts: int = 3  # Ray restarts a dead worker this often (-1: always)

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))


def require_ray() -> None:
    """Fail early, before any store is touched, when the optional dependency is missing."""
    if importlib.util.find_spec("ray") is None:
        raise RayError("--ray: Ray is not installed in this environment; install the extra with "
                       "`pip install -e '.[ray]'` (or `make install-ray`)")


def local_only(url: str) -> bool:
    """A store only this machine reaches: a SQLite file, a file store or a plain path."""
    return not url.lower().startswith(NETWORK_SCHEMES)


def fits(nodes: Iterable[dict[str, Any]], cpus: float, gpus: float) -> int:
    """How many workers of `cpus` CPUs and `gpus` GPUs the alive nodes hold (a worker never spans nodes)."""
    total = 0
    for node in nodes:
        resources = node.get("Resources", {})
        count = int(resources.get("CPU", 0) // cpus) if cpus > 0 else 10**6
        if gpus > 0:
            count = min(count, int(resources.get("GPU", 0) // gpus))
        total += count
    return total


class RayCluster:
    """A connection to a Ray cluster, made once: at once for an address (its nodes decide which
    stores are allowed), at the first worker for a local instance (nothing to start if nothing is pending)."""

    def __init__(self, plan: RayPlan) -> None:
        self.plan = plan
        self.ray: Any = None
        self.startup_s: float | None = None  # seconds ray.init took (a local instance: starting it)

    @property
    def local(self) -> bool:
        return self.plan.address == LOCAL

    def connect(self) -> Any:
        """ray.init once; returns the ray module."""
        if self.ray is not None:
            return self.ray
        require_ray()
        import ray  # the optional dependency (pip install -e '.[ray]')

        started = time.perf_counter()
        common = {"namespace": NAMESPACE, "log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if self.local:
                ray.init(address=LOCAL, num_cpus=os.cpu_count() or 1, include_dashboard=False,
                         object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
            else:
                ray.init(address=self.plan.address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayError(f"--ray {self.plan.address}: cannot connect: {str(exc).splitlines()[0]}") from exc
        self.ray = ray
        self.startup_s = time.perf_counter() - started
        nodes = self.nodes()
        cpus = sum(n["Resources"].get("CPU", 0) for n in nodes)
        gpus = sum(n["Resources"].get("GPU", 0) for n in nodes)
        what = "started a local Ray instance" if self.local else f"connected to the Ray cluster at {self.plan.address}"
        LOG.info(f"ray: {what}: {len(nodes)} node(s), {cpus:g} CPU(s), {gpus:g} GPU(s) "
                 f"({self.startup_s:.1f} s)")
        return ray

    def nodes(self) -> list[dict[str, Any]]:
        return [node for node in self.ray.nodes() if node.get("Alive")]

    def all_here(self) -> bool:
        """Whether every node of the cluster is the machine this command runs on."""
        if self.local:
            return True
        if self.plan.address.startswith("ray://"):  # Ray Client: this machine is not a node at all
            return False
        here = self.ray.get_runtime_context().get_node_id()
        return all(node["NodeID"] == here for node in self.nodes())

    def check_stores(self, **urls: str) -> None:
        """Refuse stores the workers on other nodes cannot reach, before anything is created."""
        if self.all_here():
            return
        for option, url in urls.items():
            if local_only(url):
                raise RayError(f"--{option.replace('_', '-')} {redact_url(url)}: the Ray cluster at {self.plan.address} "
                               f"has {len(self.nodes())} node(s) besides or instead of this machine, and a SQLite or "
                               "file store is reachable from this machine only; use PostgreSQL for --storage and an "
                               "MLflow server (http://...) for --tracking-uri (docs/workers.md: On a Ray cluster)")

    def worker_count(self, limit: int) -> int:
        """The plan's number of workers, or as many as fit; never more than `limit` (trials to run)."""
        fit = fits(self.nodes(), self.plan.cpus, self.plan.gpus)
        if self.plan.workers is None:
            if fit < 1:
                raise RayError(f"--ray: no node of the cluster has {self.plan.cpus:g} CPU(s) and {self.plan.gpus:g} "
                               f"GPU(s) for one worker; lower --cpus-per-worker / --gpus-per-worker or add nodes")
            return max(1, min(fit, limit))
        if self.plan.workers > fit:
            LOG.info(f"ray: {self.plan.workers} workers asked for, {fit} fit on the cluster now; the others start "
                     "when resources free up (or the autoscaler adds nodes)")
        return max(1, min(self.plan.workers, limit))

    def close(self) -> None:
        """Disconnect; a local instance we started is shut down with it (and its actors with it)."""
        if self.ray is not None:
            self.ray.shutdown()
            self.ray = None
