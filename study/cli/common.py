"""Helpers every command shares: option checks, overrides, queue settings, worker options."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


from study.core.errors import EXIT_FAILED, EXIT_INVALID, SpecError, StoreFault
from study.core.store_faults import RETRY_ENV, retry_budget_s
from study.core.text import first_line, redact
from study.data.arrays import DatasetArrays
from study.execution.launch import announce_data, verify_data
from study.execution.processes import send_fault
from study.execution.sources import WorkerOptions
from study.queue.storage import QueueSettings
from study.spec.kinds import data_configs
from study.tracking.environment import command_line
from study.tracking.store import current_uri, experiment_id
from study.tracking.summary import attach_report, latest_invocation_run
from study.training.backend import name_backend


def fail(exc: Exception) -> int:
    """One line on stderr (no URL password, whatever the message quotes), exit 2."""
    print(f"error: {redact(str(exc))}", file=sys.stderr)
    return EXIT_INVALID


def store_fault(fault: StoreFault) -> int:
    """One line on stderr naming the store and how to resume, exit 1. A worker that `study run --workers N`
    started hands it to that command instead, which says it once for all its workers."""
    if not send_fault(fault):
        print(f"error: {fault}; {fault.advice}: {command_line()}", file=sys.stderr, flush=True)
    return EXIT_FAILED


def check_options(args: argparse.Namespace) -> None:
    """Command-line numbers, checked before anything starts (exit 2 like a bad spec)."""
    retry_s = getattr(args, "store_retry_seconds", None)
    if retry_s is not None:
        if not retry_s >= 0:
            raise SpecError("--store-retry-seconds", "store_retry_seconds", f"{retry_s} must be a number >= 0")
        os.environ[RETRY_ENV] = str(retry_s)  # the stores this process opens, and the workers it starts
    retry_budget_s()  # a bad STUDY_STORE_RETRY_SECONDS is bad input too
    minimum = {"steps_per_execution": 1, "workers": 1, "threads": 1, "heartbeat": 1, "group_size": 1}
    for name, low in minimum.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            option = "--" + name.replace("_", "-")
            raise SpecError(option, name, f"{value} must be an integer >= {low}")
    if getattr(args, "grace", None) is not None and args.grace <= args.heartbeat:
        raise SpecError("--grace", "grace", f"{args.grace} must be greater than --heartbeat ({args.heartbeat})")


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """Base config fields set on the command line (`--backend`, `--executor`); trial keys follow them."""
    return {name: getattr(args, name) for name in ("backend", "executor") if getattr(args, name, None)}


def queue_settings(args: argparse.Namespace) -> QueueSettings:
    return QueueSettings(heartbeat_interval_s=args.heartbeat, grace_period_s=args.grace)


def worker_options(args: argparse.Namespace, **more) -> WorkerOptions:
    """The worker spec (study.execution.worker_spec) the command line describes."""
    return WorkerOptions(spec=str(args.spec), overrides=overrides(args), storage_url=getattr(args, "storage", None),
                         tracking_uri=args.tracking_uri, data_dir=args.data_dir, threads=getattr(args, "threads", None),
                         steps_per_execution=getattr(args, "steps_per_execution", None),
                         group_size=getattr(args, "group_size", None),
                         trial_figures=getattr(args, "trial_figures", False),
                         store_retry_s=getattr(args, "store_retry_seconds", None),
                         verbose=bool(getattr(args, "verbose", False)), label=getattr(args, "label", ""), **more)


def verified_data(spec, args: argparse.Namespace, announce: bool = False) -> dict[str, DatasetArrays]:
    """Every dataset `spec` (a study or tuning spec) trains on, loaded and verified before any store is
    opened: bad data exits 2 and leaves no queue, experiment or run behind. The backend is named
    first (MNIST's web route imports Keras); it is imported by the process's bootstrap
    (study.execution.bootstrap), with the worker's threads. `announce`: say where each came from."""
    name_backend(spec.base.backend)
    data = verify_data({config.dataset for config in data_configs(spec)}, args.data_dir)
    if announce:
        announce_data(data)
    return data


def attach_to_run(study_name: str, readme: Path, run_id: str | None) -> None:
    """The report as artifacts (report/) of this invocation's MLflow run, or, when the invocation trained
    nothing (a finished study run again, `study report`), of the study's newest invocation run."""
    try:
        exp_id = experiment_id(study_name, current_uri(), create=False)
        run_id = run_id or (latest_invocation_run(exp_id) if exp_id else None)
        if run_id:
            attach_report(run_id, readme)
    except Exception as exc:  # noqa: BLE001 - the report is written; failing to copy it is worth a line, not a crash
        print(f"warning: the report was not attached to the MLflow run: {redact(first_line(exc))}", file=sys.stderr)
