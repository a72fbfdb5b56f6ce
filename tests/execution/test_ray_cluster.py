"""Sizing Ray workers and which stores a cluster may use: plain functions, no Ray needed."""

from __future__ import annotations

import pytest

from study.cli.parser import build_parser
from study.cli.ray_cli import ray_plan
from study.core.errors import SpecError
from study.execution.ray_cluster import fits, local_only
from study.spec.ray_resources import parse_ray_resources
from study.spec.study_spec import parse_spec


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


def ray_args(*argv: str):
    return build_parser().parse_args(["run", "ablations/quick.yaml", *argv])


def test_a_specs_ray_section_sizes_the_workers_and_flags_override_it():
    spec = parse_ray_resources("s.yaml", {"workers": 4, "cpus_per_worker": 2, "gpus_per_worker": 0.5})
    plan = ray_plan(ray_args("--ray"), spec)
    assert (plan.address, plan.workers, plan.cpus, plan.gpus, plan.max_restarts) == ("local", 4, 2.0, 0.5, 3)
    plan = ray_plan(ray_args("--ray", "auto", "--gpus-per-worker", "1", "--workers", "2"), spec)
    assert (plan.address, plan.workers, plan.cpus, plan.gpus) == ("auto", 2, 2.0, 1.0)
    assert ray_plan(ray_args(), spec) is None, "the section alone does not turn Ray on"


def test_a_bad_ray_section_names_its_key():
    for section, key in (({"gpus_per_worker": -1}, "ray.gpus_per_worker"),
                         ({"cpus_per_worker": 0}, "ray.cpus_per_worker"),
                         ({"workers": 1.5}, "ray.workers"), ({"max_restarts": -2}, "ray.max_restarts"),
                         ({"gpu": 1}, "ray.gpu"), ([1], "ray")):
        with pytest.raises(SpecError) as caught:
            parse_spec({"name": "s", "ray": section}, source="s.yaml")
        assert caught.value.key == key, (section, str(caught.value))
