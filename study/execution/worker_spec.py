"""What a worker process needs to join a study, as one record that travels as JSON.

The three ways to start a worker read the same record: this process (study.execution.launch),
a `python -m study worker` process (its command line and environment are written from it:
`argv`, `env`), and a Ray actor (it gets the record as JSON, the spec's content inside, since
the file need not exist on its node). Each then calls study.execution.bootstrap.bootstrap once.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from study.core.quiet import VERBOSE_ENV
from study.core.store_faults import RETRY_ENV
from study.queue.storage import STORAGE_ENV
from study.tracking.runs import PARENT_RUN_ENV
from study.tracking.store import TRACKING_ENV


@dataclass(frozen=True)
class WorkerSpec:
    """A worker's spec (its file, or its content), stores, data, threads and executor settings."""

    spec: str = ""  # the spec file as given: what the worker's runs record as spec_file
    spec_content: dict[str, Any] | None = None  # the file's parsed content, read instead of the file (Ray)
    overrides: dict[str, str] = field(default_factory=dict)  # base fields from the command line (--backend ...)
    storage_url: str | None = None  # the queue (None: OPTUNA_STORAGE, else beside a SQLite MLflow store)
    tracking_uri: str | None = None  # the MLflow store (None: MLFLOW_TRACKING_URI, else ./mlflow.db)
    data_dir: str | None = None
    threads: int | None = None  # math-library threads of the worker's process (None: the library's default)
    steps_per_execution: int | None = None
    group_size: int | None = None  # the most trials one executor call trains (None: the executor decides)
    trial_figures: bool = False  # a learning-curve PNG per MLflow run (ExecutionSettings)
    store_retry_s: float | None = None  # how long a store may stay unreachable (None: STUDY_STORE_RETRY_SECONDS)
    verbose: bool = False  # keep TensorFlow's and JAX's own log lines (--verbose)
    label: str = ""  # prefix of this worker's progress lines when several share a terminal
    parent_run_id: str | None = None  # the invocation's MLflow run this worker's run nests under
    command: tuple[str, ...] = ()  # the command line its runs record, if not the process's own (Ray: the driver's)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)  # a YAML date in the spec: its text

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        values = json.loads(text)
        values["command"] = tuple(values.get("command", ()))
        return cls(**{f.name: values[f.name] for f in fields(WorkerSpec) if f.name in values})

    def worker_spec(self) -> WorkerSpec:
        """The record alone (a subclass such as WorkerOptions adds what cannot travel)."""
        return WorkerSpec(**{f.name: getattr(self, f.name) for f in fields(WorkerSpec)})

    def argv(self) -> list[str]:
        """The `python -m study worker` command line; the stores come in its environment (`env`), so no
        password shows in `ps` or in the worker's `command` tag."""
        command = [sys.executable, "-m", "study", "worker", self.spec]
        if self.data_dir:
            command += ["--data-dir", str(self.data_dir)]
        for name, value in self.overrides.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        if self.steps_per_execution:
            command += ["--steps-per-execution", str(self.steps_per_execution)]
        if self.group_size:
            command += ["--group-size", str(self.group_size)]
        if self.trial_figures:
            command += ["--trial-figures"]
        if self.threads:
            command += ["--threads", str(self.threads)]
        if self.label:
            command += ["--label", self.label]
        return command

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The worker's environment: `base` (this process's) with the stores, the retry budget, the verbosity
        and the parent run set (the variables `study worker` reads when no option names them)."""
        env = dict(os.environ if base is None else base)
        for name, value in ((STORAGE_ENV, self.storage_url), (TRACKING_ENV, self.tracking_uri),
                            (PARENT_RUN_ENV, self.parent_run_id)):
            if value:
                env[name] = value
        if self.store_retry_s is not None:
            env[RETRY_ENV] = str(self.store_retry_s)
        if self.verbose:
            env[VERBOSE_ENV] = "1"
        return env
