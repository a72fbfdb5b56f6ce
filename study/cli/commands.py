"""What each command does; every input problem (spec, option, data, storage) ends in one line and exit 2."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from study.cli.common import (attach_to_run, check_options, fail, overrides, queue_settings, verified_data,
                              worker_options)
from study.cli.ray_cli import ray_cluster
from study.cli.tune_commands import tune_queue, tune_spec
from study.cli.ui_server import serve
from study.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, InputError
from study.core.text import format_duration, redact, redact_url
from study.execution.bootstrap import read_spec
from study.execution.launch import run_study
from study.execution.signals import StopFlag
from study.execution.worker import run_worker
from study.queue.storage import default_storage_url
from study.queue.trial_queue import TrialQueue
from study.spec.kinds import is_tune_spec
from study.spec.study_spec import StudySpec, load_spec
from study.tracking.store import DEFAULT_ARTIFACTS, default_tracking_uri


# --------------------------------------------------------------------------- run, worker, status, report, synthesize


def synthesize(args: argparse.Namespace) -> int:
    """reports/lesson/README.md from the lesson studies' committed tables (no store needed)."""
    from study.lesson.studies import discover
    from study.lesson.synthesis import write_synthesis

    names = [n.strip() for n in args.studies.split(",") if n.strip()] if args.studies else None
    try:
        studies = discover(args.reports_dir, args.specs_dir, names)
    except InputError as exc:
        return fail(exc)
    if not studies:
        return fail(InputError(f"{args.reports_dir}: no lesson study has a report there (looked for "
                               f"{', '.join(names) if names else f'{args.specs_dir}/lesson_*.yaml'}); run the "
                               "studies first"))
    readme = write_synthesis(studies, args.reports_dir / "lesson")
    print(f"synthesis of {len(studies)} studies ({', '.join(s.name for s in studies)}): {readme}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    try:
        check_options(args)
        spec = load_spec(args.spec).with_overrides(**overrides(args))
        with ray_cluster(args, spec.ray) as cluster:
            summary = run_study(spec, tracking_uri=args.tracking_uri, data_dir=args.data_dir,
                                steps_per_execution=args.steps_per_execution, workers=args.workers or 1,
                                trial_figures=args.trial_figures, storage=args.storage, threads=args.threads,
                                group_size=args.group_size, queue_settings=queue_settings(args),
                                overrides=overrides(args), ray=cluster)
    except InputError as exc:
        return fail(exc)
    except KeyboardInterrupt:
        summary = None
    if summary is None or summary.interrupted:
        print("interrupted: the trials in progress are recorded as interrupted and re-queued; "
              "run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items())) or "nothing to run"
    print(f"done: {counts}; {summary.skipped} skipped as already done; {format_duration(summary.wall_time_s)}")
    if not args.no_report:
        write_study_report(spec, args, summary.run_id)
    return EXIT_OK if summary.ok else EXIT_FAILED


def plan(args: argparse.Namespace) -> int:
    """Trials, trial-epochs, predicted wall times (calibrating this machine once), detectable differences."""
    from study.analysis.chance import failure_rule
    from study.analysis.levels import tidy_trials
    from study.analysis.runs import trials_frame
    from study.execution.plan import describe, detectable_differences, make_plan
    from study.tracking.store import configure

    try:
        spec = load_spec(args.spec)
        data = verified_data(spec, args)
        result = make_plan(spec, data, args.data_dir, workers=args.workers)
        uri = args.tracking_uri or default_tracking_uri()
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
            uri = None  # no earlier study here: create no store
        frame = trials_frame(spec.name) if uri is not None and configure(uri) else None
        if frame is not None and not frame.empty:
            frame = frame[frame["seed"].isin(spec.seeds)].reset_index(drop=True)
            margin = (spec.adaptive.margin_pp if spec.adaptive is not None else 0.5) / 100
            result.detectable = detectable_differences(spec, tidy_trials(frame, spec),
                                                       failure_rule(spec.base, args.data_dir), margin)
    except InputError as exc:
        return fail(exc)
    print("\n".join(describe(spec, result)))
    return EXIT_OK


def worker(args: argparse.Namespace) -> int:
    """One worker on a spec's queue, from any machine: an ablation grid (its queue is created
    and filled if missing) or a tuning study (Optuna's sampler proposes the trials)."""
    prefix = f"[{args.label}] " if args.label else ""
    stop = StopFlag(prefix).install()  # early: Ctrl-C during imports is clean
    try:
        check_options(args)
        spec, queue, source, data = tune_worker_source(args) if is_tune_spec(args.spec) else grid_worker_source(args)
        summary = run_worker(spec, queue, source, worker_options(args, preloaded=data), stop=stop)
    except InputError as exc:
        return fail(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        stop.restore()
    if summary.interrupted:
        print(f"{prefix}worker stopped: its trials in progress were re-queued", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary.counts:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items()))
        print(f"{prefix}worker done: {counts}; {format_duration(summary.wall_time_s)}")
    return EXIT_FAILED if summary.counts.get("failed") else EXIT_OK


def grid_worker_source(args: argparse.Namespace):
    from study.execution.adaptive_rounds import source_for

    spec = read_spec(worker_options(args))
    data = verified_data(spec, args)  # before the queue: bad data leaves nothing behind
    queue = TrialQueue.open(args.storage or default_storage_url(args.tracking_uri), spec.name, queue_settings(args))
    source = source_for(spec, args.data_dir)
    added = source.enqueue(queue)
    if added:
        print(f"queued {added} trial(s) of {spec.name} that were not in the queue yet")
    return spec, queue, source, data


def tune_worker_source(args: argparse.Namespace):
    from study.execution.tune_source import TuneSource

    spec = tune_spec(args)
    data = verified_data(spec, args)
    return spec, tune_queue(spec, args), TuneSource(spec), data


def status(args: argparse.Namespace) -> int:
    try:
        if is_tune_spec(args.spec):
            from study.execution.tune_source import TuneSource
            from study.spec.tune_spec import load_tune_spec

            spec = load_tune_spec(args.spec)
            source, label, start = TuneSource(spec), f"tuning study {spec.name}", f"python -m study tune {spec.source}"
        else:
            from study.execution.adaptive_rounds import source_for

            spec = load_spec(args.spec)
            source, label, start = source_for(spec), f"study {spec.name}", f"python -m study run {spec.source}"
        url = args.storage or default_storage_url(args.tracking_uri)
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            print(f"{label}: not started ({redact_url(url)} does not exist; run `{start}`)")
            return EXIT_OK
        queue = TrialQueue.open(url, spec.name, readonly=True)
    except InputError as exc:
        return fail(exc)
    if queue is None:
        print(f"{label}: not started in {redact_url(url)} (run `{start}` first)")
        return EXIT_OK
    print(source.status_text(queue))
    return EXIT_OK


def report(args: argparse.Namespace) -> int:
    try:
        spec = load_spec(args.spec).with_overrides(**overrides(args))
    except InputError as exc:
        return fail(exc)
    return write_study_report(spec, args)


def write_study_report(spec: StudySpec, args: argparse.Namespace, run_id: str | None = None) -> int:
    from study.report.study_report import write_report

    path = write_report(spec, tracking_uri=args.tracking_uri, out_root=args.reports_dir,
                        data_dir=getattr(args, "data_dir", None))
    print(f"report: {path}")
    attach_to_run(spec.name, path, run_id)
    return EXIT_OK


def ui(args: argparse.Namespace) -> int:
    """Run `mlflow ui` on our store and artifact root (as MLflow's app plugin `study-ui` when installed:
    it opens experiments on their training runs, see study.cli.ui_app) until it ends or a signal stops
    it and every process it started (study.cli.ui_server)."""
    from importlib.metadata import entry_points

    from study.cli.ui_app import APP_NAME

    mlflow_bin = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    command = [mlflow_bin, "ui", "--backend-store-uri", args.tracking_uri or default_tracking_uri(),
               "--default-artifact-root", str(Path(DEFAULT_ARTIFACTS).resolve()),
               "--host", args.host, "--port", str(args.port)]
    if entry_points(group="mlflow.app", name=APP_NAME):
        command += ["--app-name", APP_NAME]
    print(" ".join(redact(part) for part in command), flush=True)
    return serve(command)
