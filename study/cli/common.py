"""Helpers every command shares: option checks, overrides, queue settings, worker options."""

from __future__ import annotations

import argparse
import sys

from study.core.errors import EXIT_INVALID, SpecError
from study.execution.sources import WorkerOptions
from study.queue.storage import QueueSettings


def fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_INVALID


def check_options(args: argparse.Namespace) -> None:
    """Command-line numbers, checked before anything starts (exit 2 like a bad spec)."""
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
    return WorkerOptions(data_dir=args.data_dir, steps_per_execution=getattr(args, "steps_per_execution", None),
                         threads=args.threads, tracking_uri=args.tracking_uri, label=getattr(args, "label", ""),
                         trial_figures=getattr(args, "trial_figures", False),
                         group_size=getattr(args, "group_size", None), **more)
