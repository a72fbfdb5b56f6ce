"""The command line's shape: `python -m study run|plan|worker|status|report|tune|analyze|ui`."""

from __future__ import annotations

import argparse
from pathlib import Path

from study.config import FACTORS
from study.config.user_code import CODE_FIELDS

BACKENDS = FACTORS["backend"].choices
EXECUTORS = tuple(c for c in FACTORS["executor"].choices if c not in CODE_FIELDS)  # train:/command: set theirs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description="Hyperparameter ablation studies of Keras models.")
    parser.add_argument("--verbose", action="store_true",
                        help="keep TensorFlow's and JAX's own start-up and retracing log lines")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train every pending trial of a study, then write its report")
    run.add_argument("spec", type=Path, help="study spec (YAML), e.g. ablations/quick.yaml")
    _reports(run)
    _training(run)
    run.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    run.add_argument("--workers", type=int,
                     help="worker processes on this machine, all taking trials from one queue (default 1); with "
                          "--ray, Ray workers (default: as many as fit)")
    _queue_options(run)
    _ray_options(run)

    worker = sub.add_parser("worker", help="join a study's queue from any machine and train trials until none is "
                                           "left (an ablation spec, or a tuning spec: then Optuna's sampler decides)")
    worker.add_argument("spec", type=Path)
    _tracking(worker)
    _training(worker)
    worker.add_argument("--label", default="", help="prefix of this worker's progress lines")
    _queue_options(worker)

    plan = sub.add_parser("plan", help="before anything is queued: trials, trial-epochs, predicted wall time per "
                                       "executor and worker count on this machine, detectable differences")
    plan.add_argument("spec", type=Path)
    _tracking(plan)
    plan.add_argument("--data-dir", help="directory with the MNIST IDX .gz files or mnist.npz (or STUDY_DATA_DIR)")
    plan.add_argument("--workers", type=int, action="append",
                      help="worker counts to predict (repeatable; default 1 and this machine's cores)")

    status = sub.add_parser("status", help="a study's trials by state, workers seen alive, ETA")
    status.add_argument("spec", type=Path)
    status.add_argument("--tracking-uri", help="MLflow tracking URI; only used to find the default --storage")
    status.add_argument("--storage", help="Optuna storage URL of the queue (default: OPTUNA_STORAGE, else "
                                          "optuna.db beside a SQLite MLflow store)")

    report = sub.add_parser("report", help="write reports/<study>/ from the MLflow store")
    report.add_argument("spec", type=Path)
    report.add_argument("--backend", choices=BACKENDS, help="the backend the study ran with, if overridden at run "
                                                            "time (trial keys include it)")
    report.add_argument("--executor", choices=EXECUTORS, help="the executor the study ran with, if overridden at "
                                                              "run time (trial keys include it)")
    report.add_argument("--data-dir", help="where the data is (or STUDY_DATA_DIR): the validation labels give the "
                                           "majority-class rate below which a trial counts as not learning")
    _reports(report)

    synthesize = sub.add_parser("synthesize", help="one synthesis of the lesson across its studies' reports: "
                                                   "reports/lesson/README.md")
    synthesize.add_argument("--reports-dir", type=Path, default=Path("reports"),
                            help="where the studies' reports are and where reports/lesson/ is written")
    synthesize.add_argument("--specs-dir", type=Path, default=Path("ablations"),
                            help="where the lesson's specs (lesson_*.yaml) are")
    synthesize.add_argument("--studies", help="comma-separated study names (default: every lesson_*.yaml with a "
                                              "report)")
    _analyze(sub.add_parser("analyze", help="analyse an existing MLflow experiment's runs (any code logged them) "
                                            "like a study: effects by block, decomposition, leaderboard"))

    ui = sub.add_parser("ui", help="MLflow UI for our store (what `make ui` runs)")
    ui.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=5000)

    tune = sub.add_parser("tune", help="tune a base config with Optuna, retrain base vs tuned, write the report")
    tune.add_argument("spec", type=Path, help="tuning spec (YAML), e.g. ablations/tune_dropout_lr.yaml")
    _reports(tune)
    tune.add_argument("--workers", type=int,
                      help="worker processes on this machine, all tuning one Optuna study (default 1); more can "
                           "join from other machines with `study worker SPEC --storage URL`; with --ray, Ray "
                           "workers (default: as many as fit)")
    _queue_options(tune)
    _ray_options(tune)
    tune.add_argument("--data-dir", help="directory with the MNIST IDX .gz files or mnist.npz (or STUDY_DATA_DIR)")
    tune.add_argument("--no-retrain", action="store_true", help="skip retraining base vs tuned with retrain_seeds")
    tune.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    tune.add_argument("--report-only", action="store_true", help="only rewrite the report from the stores")
    return parser


def _analyze(parser: argparse.ArgumentParser) -> None:
    """`study analyze [FILE.yaml] --experiment NAME --factors a,b --metric M ...` (the file has the same keys)."""
    parser.add_argument("spec", type=Path, nargs="?", help="optional YAML file with the keys below (snake_case); "
                                                           "options given here override it")
    parser.add_argument("--experiment", help="the MLflow experiment whose runs to analyse")
    parser.add_argument("--factors", help="comma-separated params whose values are the factors' levels")
    parser.add_argument("--seed-param", help="the param (else the tag) holding each run's seed (default: seed)")
    parser.add_argument("--metric", help="the metric analysed (its last logged value per run)")
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument("--higher-is-better", dest="higher_is_better", action="store_const", const=True,
                           help="the metric is an accuracy or a score (the default)")
    direction.add_argument("--lower-is-better", dest="lower_is_better", action="store_const", const=True,
                           help="the metric is a loss or an error: the analysis reads its negative, and says so")
    parser.add_argument("--chance", type=float, help="the metric's value at chance: a run at or below chance + "
                                                     "margin did not learn (at or above chance - margin for a loss)")
    parser.add_argument("--margin", type=float, help="with --chance: how far past chance still counts as not "
                                                     "learning (default 0.05)")
    parser.add_argument("--reference", help="the level each effect is measured against, e.g. lr=0.001,opt=sgd "
                                            "(default: the smallest number, False, else the level of the oldest run)")
    parser.add_argument("--name", help="the report's folder under --reports-dir (default: the experiment's name)")
    parser.add_argument("--tracking-uri", help="the MLflow store holding the experiment (default: "
                                               "MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--reports-dir", type=Path, help="where reports are written (default: reports)")


def _tracking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or "
                                               "sqlite:///mlflow.db)")


def _reports(parser: argparse.ArgumentParser) -> None:
    _tracking(parser)
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where reports are written")


def _training(parser: argparse.ArgumentParser) -> None:
    """Options of the processes that train: data, backend and executor overrides, speed knobs."""
    parser.add_argument("--data-dir", help="directory with the MNIST IDX .gz files or mnist.npz (or STUDY_DATA_DIR)")
    parser.add_argument("--backend", choices=BACKENDS, help="Keras backend (overrides the spec; part of trial keys)")
    parser.add_argument("--executor", choices=EXECUTORS, help="how trials are trained (overrides the spec; part "
                                                              "of trial keys)")
    parser.add_argument("--steps-per-execution", type=int, help="batches per compiled step (overrides the spec)")
    parser.add_argument("--group-size", type=int, help="the most trials one executor call trains together "
                                                       "(executors that train groups; default: decided by memory)")
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
    parser.add_argument("--store-retry-seconds", type=float, metavar="S",
                        help="how long the queue or MLflow store may stay unreachable (restart, failover) before "
                             "the command stops with one line saying how to resume (default: "
                             "STUDY_STORE_RETRY_SECONDS, else 120; 0: no retries)")


def _ray_options(parser: argparse.ArgumentParser) -> None:
    """The workers as Ray actors on a cluster (optional dependency: pip install -e '.[ray]')."""
    group = parser.add_argument_group("Ray", "run the workers as Ray actors (docs/workers.md: On a Ray cluster)")
    group.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run the workers on the Ray cluster at ADDRESS (as ray.init takes it: host:6379, "
                            "ray://host:10001, auto); without ADDRESS, on a new local Ray instance")
    group.add_argument("--cpus-per-worker", type=float, metavar="C",
                       help="CPUs Ray reserves for each worker (default 1); also its math threads unless --threads")
    group.add_argument("--gpus-per-worker", type=float, metavar="G",
                       help="GPUs Ray gives each worker (default 0; Ray sets CUDA_VISIBLE_DEVICES per worker)")
    group.add_argument("--max-restarts", type=int, metavar="R",
                       help="how often Ray restarts a worker that died (default 3; -1: always); its trials go back "
                            "to the queue by heartbeat either way")
