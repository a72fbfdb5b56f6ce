"""Sizing Ray workers and which stores a cluster may use: plain functions, no Ray needed."""

from __future__ import annotations

from study.execution.ray_cluster import fits, local_only


def node(cpus: float, gpus: float = 0) -> dict:
    """One alive node as ray.nodes() describes it (only the fields `fits` reads)."""
    return {"Alive": True, "Resources": {"CPU": cpus, **({"GPU": gpus} if gpus else {})}}


def test_as_many_workers_as_fit_never_span_nodes():
    assert fits([node(2)], cpus=1, gpus=0) == 2
    assert fits([node(3), node(3)], cpus=2, gpus=0) == 2, "1 CPU left on each node is not a third worker"
    assert fits([node(16, gpus=2), node(16)], cpus=4, gpus=1) == 2, "GPU workers only where the GPUs are"
    assert fits([node(8, gpus=4)], cpus=1, gpus=0.5) == 8
    assert fits([node(1)], cpus=2, gpus=0) == 0


def test_only_network_stores_are_shared_between_nodes():
    for url in ("sqlite:////tmp/optuna.db", "sqlite:///mlflow.db", "file:///tmp/mlruns", "/tmp/mlruns", "mlruns"):
        assert local_only(url), url
    for url in ("postgresql://study:pw@dbhost/optuna", "postgresql+psycopg2://u@h/db", "mysql://u@h/db",
                "http://dbhost:5000", "https://mlflow.example", "databricks"):
        assert not local_only(url), url
