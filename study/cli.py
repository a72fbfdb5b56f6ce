"""Command line: `python -m study run|worker|status|report|tune SPEC.yaml`, `python -m study ui` (exit 2 on invalid input)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study.spec import SpecError, load_spec

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description="Hyperparameter ablation studies of the MNIST MLP.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train every pending trial of a study, then write its report")
    run.add_argument("spec", type=Path, help="study spec (YAML), e.g. ablations/quick.yaml")
    _common(run)
    run.add_argument("--data-dir", help="directory with the MNIST IDX .gz files or mnist.npz (or STUDY_DATA_DIR)")
    run.add_argument("--backend", choices=["tensorflow", "jax"], help="Keras backend (overrides the spec)")
    run.add_argument("--steps-per-execution", type=int, help="batches per compiled step (overrides the spec)")
    run.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    _trial_figures(run)
    run.add_argument("--workers", type=int, default=1,
                     help="worker processes on this machine, all taking trials from one queue (default 1)")
    _queue_options(run)

    worker = sub.add_parser("worker", help="join a study's queue from any machine and train trials until none is "
                                           "left (an ablation spec, or a tuning spec: then Optuna's sampler decides)")
    worker.add_argument("spec", type=Path)
    worker.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    worker.add_argument("--data-dir", help="directory with the MNIST IDX .gz files or mnist.npz (or STUDY_DATA_DIR)")
    worker.add_argument("--backend", choices=["tensorflow", "jax"], help="Keras backend (overrides the spec)")
    worker.add_argument("--steps-per-execution", type=int, help="batches per compiled step (overrides the spec)")
    worker.add_argument("--label", default="", help="prefix of this worker's progress lines")
    _trial_figures(worker)
    _queue_options(worker)

    status = sub.add_parser("status", help="a study's trials by state, workers seen alive, ETA")
    status.add_argument("spec", type=Path)
    status.add_argument("--tracking-uri", help="MLflow tracking URI; only used to find the default --storage")
    status.add_argument("--storage", help="Optuna storage URL of the queue (default: OPTUNA_STORAGE, else "
                                          "optuna.db beside a SQLite MLflow store)")

    report = sub.add_parser("report", help="write reports/<study>/ from the MLflow store")
    report.add_argument("spec", type=Path)
    report.add_argument("--backend", choices=["tensorflow", "jax"], help="the backend the study ran with, if "
                        "overridden at run time (trial keys include it)")
    _common(report)

    ui = sub.add_parser("ui", help="MLflow UI for our store (what `make ui` runs)")
    ui.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=5000)

    tune = sub.add_parser("tune", help="tune a base config with Optuna, retrain base vs tuned, write the report")
    tune.add_argument("spec", type=Path, help="tuning spec (YAML), e.g. ablations/tune_dropout_lr.yaml")
    _common(tune)
    tune.add_argument("--workers", type=int, default=1,
                      help="worker processes on this machine, all tuning one Optuna study (default 1); more can "
                           "join from other machines with `study worker SPEC --storage URL`")
    _queue_options(tune)
    tune.add_argument("--data-dir", help="directory with the MNIST IDX .gz files or mnist.npz (or STUDY_DATA_DIR)")
    tune.add_argument("--no-retrain", action="store_true", help="skip retraining base vs tuned with retrain_seeds")
    tune.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    tune.add_argument("--report-only", action="store_true", help="only rewrite the report from the stores")
    return parser


def _trial_figures(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trial-figures", action="store_true",
                        help="log a learning-curve PNG with every trial's MLflow run (~0.3 s per trial; the MLflow "
                             "UI charts the per-epoch metrics without it)")


def _queue_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", help="Optuna storage URL of the queue, e.g. postgresql://user:pw@host/optuna "
                                          "(default: OPTUNA_STORAGE, else optuna.db beside a SQLite MLflow store)")
    parser.add_argument("--threads", type=int,
                        help="math threads per worker process (default: cores / workers; one worker: all)")
    parser.add_argument("--heartbeat", type=int, default=5, metavar="S",
                        help="seconds between a worker's heartbeats (used when the queue is created; default 5)")
    parser.add_argument("--grace", type=int, default=30, metavar="S",
                        help="seconds without heartbeat before a trial is re-queued (used when the queue is "
                             "created; default 30)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where reports are written")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ui":
        return _ui(args)
    if args.command == "tune":
        return _tune(args)
    try:
        _check_options(args)
        if args.command == "worker":
            return _worker(args)
        if args.command == "status" and is_tune_spec(args.spec):
            return _tune_status(args)
        spec = load_spec(args.spec)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.command == "run":
        return _run(spec, args)
    if args.command == "status":
        return _status(spec, args)
    return _report(spec, args)


def _check_options(args: argparse.Namespace) -> None:
    """Command-line numbers, checked before anything starts (exit 2 like a bad spec)."""
    minimum = {"steps_per_execution": 1, "workers": 1, "threads": 1, "heartbeat": 1}
    for name, low in minimum.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            option = "--" + name.replace("_", "-")
            raise SpecError(option, name, f"{value} must be an integer >= {low}")
    if getattr(args, "grace", None) is not None and args.grace <= args.heartbeat:
        raise SpecError("--grace", "grace", f"{args.grace} must be greater than --heartbeat ({args.heartbeat})")


def is_tune_spec(path: Path) -> bool:
    """A tuning spec has a search space; `worker` and `status` take either kind."""
    from study.spec import read_yaml

    raw = read_yaml(path)
    return isinstance(raw, dict) and "search_space" in raw


def _queue_settings(args: argparse.Namespace):
    from study.engine import QueueSettings

    return QueueSettings(heartbeat_interval_s=args.heartbeat, grace_period_s=args.grace)


def _run(spec, args) -> int:
    from study.data import DataError
    from study.engine import StorageError
    from study.runner import format_duration, run_study

    try:
        summary = run_study(spec, tracking_uri=args.tracking_uri, data_dir=args.data_dir, backend=args.backend,
                            steps_per_execution=args.steps_per_execution, workers=args.workers,
                            trial_figures=args.trial_figures,
                            storage=args.storage, threads=args.threads, queue_settings=_queue_settings(args))
    except (DataError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        summary = None
    if summary is None or summary.interrupted:
        print("interrupted: the trials in progress are recorded as interrupted and re-queued; "
              "run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items())) or "nothing to run"
    print(f"done: {counts}; {summary.skipped} skipped as already done; {format_duration(summary.wall_time_s)}")
    if not args.no_report:
        _report(spec, args)
    return EXIT_OK if summary.ok else EXIT_FAILED


def _worker(args) -> int:
    """One worker on a spec's queue, from any machine: an ablation grid (its queue is created
    and filled if missing) or a tuning study (Optuna's sampler proposes the trials)."""
    from study.data import DataError
    from study.engine import StorageError
    from study.runner import format_duration
    from study.worker import StopFlag, WorkerOptions, run_worker

    prefix = f"[{args.label}] " if args.label else ""
    stop = StopFlag(lambda line: print(prefix + line, flush=True)).install()  # early: Ctrl-C during imports is clean
    try:
        spec, queue, source = _tune_worker_source(args) if is_tune_spec(args.spec) else _grid_worker_source(args)
        options = WorkerOptions(data_dir=args.data_dir, steps_per_execution=args.steps_per_execution,
                                threads=args.threads, tracking_uri=args.tracking_uri, label=args.label,
                                trial_figures=args.trial_figures)
        summary = run_worker(spec, queue, source, options, stop=stop)
    except (SpecError, DataError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        stop.restore()
    if summary.interrupted:
        print(f"{prefix}worker stopped: its trial in progress was re-queued", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary.counts:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items()))
        print(f"{prefix}worker done: {counts}; {format_duration(summary.wall_time_s)}")
    return EXIT_FAILED if summary.counts.get("failed") else EXIT_OK


def _grid_worker_source(args):
    from study.engine import TrialQueue, default_storage_url
    from study.runner import with_backend
    from study.worker import GridSource

    spec = load_spec(args.spec)
    if args.backend:
        spec = with_backend(spec, args.backend)
    queue = TrialQueue.open(args.storage or default_storage_url(args.tracking_uri), spec.name, _queue_settings(args))
    source = GridSource(spec)
    added = source.enqueue(queue)
    if added:
        print(f"queued {added} trial(s) of {spec.name} that were not in the queue yet")
    return spec, queue, source


def _tune_worker_source(args):
    from study.tune_source import TuneSource

    spec, queue = _load_tune(args)
    return spec, queue, TuneSource(spec)


def _status(spec, args) -> int:
    from study.status import collect, format_status
    from study.worker import GridSource

    queue, code = _open_for_status(args, spec.name, f"study {spec.name}", f"python -m study run {spec.source}")
    if queue is None:
        return code
    print(format_status(collect(queue, GridSource(spec).keys), spec.source))
    return EXIT_OK


def _open_for_status(args, study_name: str, label: str, start_command: str):
    """(the study's queue read-only, None) or (None, exit code) after saying why there is none to show."""
    from study.engine import StorageError, TrialQueue, default_storage_url

    url = args.storage or default_storage_url(args.tracking_uri)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        print(f"{label}: not started ({url} does not exist; run `{start_command}`)")
        return None, EXIT_OK
    try:
        queue = TrialQueue.open(url, study_name, readonly=True)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, EXIT_INVALID
    if queue is None:
        print(f"{label}: not started in {url} (run `{start_command}` first)")
        return None, EXIT_OK
    return queue, None


def _report(spec, args) -> int:
    from study.report import write_report
    from study.runner import with_backend

    if getattr(args, "backend", None):
        spec = with_backend(spec, args.backend)
    path = write_report(spec, tracking_uri=args.tracking_uri, out_root=args.reports_dir)
    print(f"report: {path}")
    return EXIT_OK


def _ui(args) -> int:
    """Replace this process with `mlflow ui` on our store and artifact root."""
    import os
    import shutil

    from study.tracking import DEFAULT_ARTIFACTS, default_tracking_uri

    mlflow_bin = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    command = [mlflow_bin, "ui", "--backend-store-uri", args.tracking_uri or default_tracking_uri(),
               "--default-artifact-root", str(Path(DEFAULT_ARTIFACTS).resolve()),
               "--host", args.host, "--port", str(args.port)]
    print(" ".join(command), flush=True)
    os.execv(mlflow_bin, command)
    return EXIT_FAILED  # not reached


def _load_tune(args):
    """The tuning spec with base_from resolved, and its queue (created, or checked for resume)."""
    from study.engine import default_storage_url
    from study.tune_spec import load_tune_spec
    from study.tuner import open_queue, resolve_base_from

    spec = resolve_base_from(load_tune_spec(args.spec), args.tracking_uri)
    if getattr(args, "backend", None):
        from dataclasses import replace

        from study.spec import coerce_field

        coerce_field("--backend", "backend", "backend", args.backend)
        spec = replace(spec, base=spec.base.replace(backend=args.backend))
    url = args.storage or default_storage_url(args.tracking_uri)
    return spec, open_queue(spec, url, _queue_settings(args))


def _tune(args) -> int:
    """Everything that can be wrong with the input is checked before the first trial: spec,
    options, base_from, storage URL, resume compatibility, data."""
    from study.data import DataError
    from study.engine import StorageError
    from study.runner import format_duration
    from study.tuner import run_tuning

    try:
        _check_options(args)
        spec, queue = _load_tune(args)
    except (SpecError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    code = EXIT_OK
    if not args.report_only:
        try:
            summary = run_tuning(spec, queue, tracking_uri=args.tracking_uri, data_dir=args.data_dir,
                                 retrain=not args.no_retrain, workers=args.workers, threads=args.threads)
        except (SpecError, DataError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INVALID
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
        from study.tune_report import write_tune_report

        path = write_tune_report(spec, queue.storage, queue.url, tracking_uri=args.tracking_uri,
                                 out_root=args.reports_dir)
        print(f"report: {path}")
    return code


def _tune_status(args) -> int:
    from study.status import format_tune_status
    from study.tune_spec import load_tune_spec

    spec = load_tune_spec(args.spec)
    queue, code = _open_for_status(args, spec.name, f"tuning study {spec.name}",
                                   f"python -m study tune {spec.source}")
    if queue is None:
        return code
    print(format_tune_status(queue, spec))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
