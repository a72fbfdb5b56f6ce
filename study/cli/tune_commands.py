"""`python -m study tune`: the spec with base_from resolved, its queue, the search, the report."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack

from study.cli.common import attach_to_run, check_options, fail, queue_settings, verified_data, worker_options
from study.cli.ray_cli import ray_cluster
from study.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, InputError
from study.core.text import format_duration
from study.execution.bootstrap import read_spec
from study.execution.tune_launch import run_tuning
from study.queue.storage import default_storage_url
from study.spec.tune_spec import TuneSpec, load_tune_spec
from study.tuning.optuna_setup import open_queue


def tune_spec(args: argparse.Namespace) -> TuneSpec:
    """The tuning spec with base_from resolved and the command line's overrides applied."""
    return read_spec(worker_options(args), tune=True)


def tune_queue(spec: TuneSpec, args: argparse.Namespace):
    """The spec's queue (created, or checked for resume)."""
    return open_queue(spec, args.storage or default_storage_url(args.tracking_uri), queue_settings(args))


def tune(args: argparse.Namespace) -> int:
    """Everything that can be wrong with the input is checked before the first trial: spec,
    options, base_from, storage URL, resume compatibility, data."""
    ray = ExitStack()  # with --ray: connected (and the stores checked) before load_tune creates the queue
    try:
        check_options(args)
        cluster = None if args.report_only else ray.enter_context(ray_cluster(args, load_tune_spec(args.spec).ray))
        spec = tune_spec(args)
        data = None if args.report_only else verified_data(spec, args, announce=True)  # before the queue exists
        queue = tune_queue(spec, args)
    except InputError as exc:
        ray.close()
        return fail(exc)
    code = EXIT_OK
    if not args.report_only:
        try:
            with ray:
                summary = run_tuning(spec, queue, tracking_uri=args.tracking_uri, data_dir=args.data_dir,
                                     retrain=not args.no_retrain, workers=args.workers or 1, threads=args.threads,
                                     data=data, ray=cluster)
        except InputError as exc:
            return fail(exc)
        except KeyboardInterrupt:
            print("interrupted: the trials in progress are recorded as interrupted and re-queued with their "
                  "parameters; run the same command to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
        counts = ", ".join(f"{k.lower()} {v}" for k, v in sorted(summary.counts.items())) or "no new trials"
        best = (f"best {spec.metric} {summary.best_value:.4f} (trial #{summary.best_number}: "
                + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in summary.best_params.items()) + ")") if summary.best_value is not None else ""
        print(f"done: {counts}; {summary.done_before} done before; {best}; {format_duration(summary.wall_time_s)}")
        code = EXIT_OK if summary.ok else EXIT_FAILED
    if not args.no_report:
        from study.report.tune_report import write_tune_report

        path = write_tune_report(spec, queue, tracking_uri=args.tracking_uri, out_root=args.reports_dir)
        print(f"report: {path}")
        attach_to_run(spec.name, path, None if args.report_only else summary.run_id)
    return code
