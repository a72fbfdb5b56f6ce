"""A process's set-up before it trains or launches, once, the same for every way a worker starts.

`bootstrap(worker_spec, spec)` applies the worker spec's store-retry budget and verbosity,
chooses the Keras backend with the worker's threads (before anything imports TensorFlow or JAX),
builds the study's own models once (a bad one exits 2 before any store exists) and opens the
MLflow store (study.tracking.store.configure, the one place the tracking URI is set). The launcher
of `study run|tune`, `study worker`, the worker loop and a Ray actor all call it; a second call
with the same settings in the same process returns at once.

`read_spec` reads a worker spec's study or tuning spec: its file, or the content it carries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from study.analysis.leaderboard import best_config
from study.config import LESSON_MODEL, TrialConfig
from study.core.errors import SpecError
from study.core.quiet import keep_logs
from study.core.store_faults import RETRY_ENV
from study.core.text import redact_url
from study.execution.worker_spec import WorkerSpec
from study.spec.reading import read_yaml
from study.spec.study_spec import StudySpec, parse_spec
from study.spec.tune_spec import TuneSpec, parse_tune_spec, with_base
from study.tracking.store import configure, current_uri, default_tracking_uri
from study.training.backend import select_backend
from study.training.executors.registry import choose_backend
from study.training.model_check import check_inert, check_models
from study.training.user_code_check import check_code

LOG = logging.getLogger(__name__)
_BOOTED: list[tuple[Any, ...]] = []  # the settings this process was set up with (bootstrap's memory)


def bootstrap(worker: WorkerSpec, spec: StudySpec | TuneSpec, configs: Iterable[TrialConfig] = (),
              trains: bool = True, announce: bool = False) -> str:
    """Set this process up for `worker` training `spec` (its base's backend); return the tracking URI.
    `trains`: this process trains (its backend gets the worker's threads); `configs`: the trials whose
    own models must build (once per structure: study.training.model_check remembers); `announce`: say
    what the checks found (the launching command does; each worker checks quietly)."""
    uri = worker.tracking_uri or default_tracking_uri()
    backend = spec.base.backend
    settings = (uri, backend, worker.threads if trains else None, trains, worker.store_retry_s, worker.verbose)
    configs = list(configs)
    if _BOOTED == [settings] and current_uri() == uri:
        verify_models(configs, spec, announce)  # structures not built yet, if any
        return uri
    if worker.store_retry_s is not None:
        os.environ[RETRY_ENV] = str(worker.store_retry_s)  # the stores this process opens, and its workers
    if worker.verbose:
        keep_logs()
    if trains:  # Keras' backend, or for your own code only its name (no TensorFlow start-up for scikit-learn)
        choose_backend(spec.base, threads=worker.threads)
    verify_models(configs, spec, announce)
    configure(uri)
    _BOOTED[:] = [settings]
    return uri


def verify_models(configs: list[TrialConfig], spec: StudySpec | TuneSpec, announce: bool = False) -> None:
    """Build a user model once per structure before anything is created (SpecError, exit 2, naming `model`).
    A launcher of many workers builds them too (it imports Keras for that, trains nothing); each worker
    checks its base model again when it starts, as a worker on another machine does. Your training code
    (train:, command:) is checked the same way (it imports and takes (config, reporter), the program runs),
    and a factor an executor declares inert is refused (study.training.model_check.check_inert)."""
    check_inert(configs, spec.source)
    code = check_code(configs, spec.source)
    if code and announce:
        LOG.info(f"code: {', '.join(code)} (checked)")
    if all(c.model == LESSON_MODEL for c in configs):
        return  # the lesson's MLP needs no check (and a launcher of many workers never imports Keras for it)
    select_backend(spec.base.backend)  # a no-op when this process trains (chosen above)
    built = check_models(configs, spec.source)
    if built and announce:
        LOG.info(f"model: {spec.base.model} builds a keras.Model for each of the {built} model structure(s) (checked)")


def read_spec(worker: WorkerSpec, tune: bool | None = None) -> StudySpec | TuneSpec:
    """The worker's spec, from its content if it carries one (else its file), with the command line's overrides;
    a tuning spec's `base_from` resolved (it reads the MLflow store, which it opens). `tune`: read it as a
    tuning spec (True) or an ablation spec (False); None: a spec with a search space is a tuning spec."""
    raw = worker.spec_content if worker.spec_content is not None else read_yaml(worker.spec)
    name = Path(worker.spec).stem
    if tune if tune is not None else isinstance(raw, dict) and "search_space" in raw:
        spec: TuneSpec = resolve_base_from(parse_tune_spec(raw, source=worker.spec, default_name=name),
                                           worker.tracking_uri)
        return spec.with_base_fields(**worker.overrides) if worker.overrides else spec
    return parse_spec(raw, source=worker.spec, default_name=name).with_overrides(**worker.overrides)


def resolve_base_from(spec: TuneSpec, tracking_uri: str | None) -> TuneSpec:
    """Turn `base_from: <ablation study>` into that study's best config (the report's leaderboard order)."""
    if spec.base_from is None:
        return spec
    uri = configure(tracking_uri)
    found = best_config(spec.base_from)
    if found is None:
        raise SpecError(spec.source, "base_from", f"no finished trials of the ablation study {spec.base_from!r} in "
                                                  f"{redact_url(uri)}: run it first (python -m study run ...) or name "
                                                  "another")
    return with_base(spec, found)
