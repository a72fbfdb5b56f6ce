"""How fast this machine trains a model structure: measured once, in a few seconds, cached with its date and CPU.

`study plan` predicts a spec's wall time from these numbers. For each cost class (what decides a trial's
cost: the model's structure, batch size, backend, executor; not the activation or the seed), one process
trains the class's config through the same path a worker uses (executor + MLflow records on a scratch store)
three times on small training subsets and fits

    trial seconds = overhead + epochs x (per_epoch + per_example x training examples)

(per_epoch: validating on the full validation split and the epoch's own fixed cost; overhead: building,
recording, the test evaluation). A first, untimed run gives the compile cost of a new structure. The fused
executor is measured on a group as wide as the spec's (up to 8) and its numbers are per trial. Two workers are
measured as two such processes at once with their threads split, so the machine's contention is in the
numbers. The process's own start (imports, data) and a queue round trip are measured too.

What a whole `study run` adds around its trials (its own start, creating the stores, starting the worker
processes, the invocation run's totals at the end) is measured as it is: one real `study run` of one
one-epoch trial per worker on fresh stores, less those trials' calibrated cost (`launch_s`, once per
backend and worker count).

Cached in `<project cache>/calibration.json` (STUDY_CACHE_DIR, else ./.cache) keyed by CPU model, core count,
cost class, executor and threads; a different CPU or structure measures again.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from study.config import TrialConfig, structure_key
from study.tracking.environment import cpu_model

SMALL, LARGE = 512, 2048  # training examples of the timed runs
LOG = logging.getLogger(__name__)
MAX_WIDTH = 8  # widest fused group measured
CACHE_NAME = "calibration.json"
COST_IRRELEVANT = ("activation", "init", "optimizer", "executor")  # same cost whatever their value


def cache_path() -> Path:
    return Path(os.environ.get("STUDY_CACHE_DIR") or Path.cwd() / ".cache") / CACHE_NAME


def cost_class(config: TrialConfig) -> str:
    """What decides a trial's seconds per example, as a stable string."""
    structure = {k: v for k, v in structure_key(config) if k not in COST_IRRELEVANT}
    structure.update(batch_size=config.batch_size, dropout=config.dropout > 0)
    return json.dumps(structure, sort_keys=True, default=str)


def entry_key(config: TrialConfig, executor: str, workers: int) -> str:
    return f"{cpu_model()}|{os.cpu_count()}|{executor}|w{workers}|{cost_class(config)}"


def load_cache() -> dict[str, Any]:
    path = cache_path()
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def cached(config: TrialConfig, executor: str, workers: int) -> dict[str, Any] | None:
    return load_cache().get(entry_key(config, executor, workers))


def calibrate(configs: list[TrialConfig], executor: str, workers: int, width: int,
              data_dir: str | None) -> dict[str, dict[str, Any]]:
    """Measure the cost classes of `configs` not cached yet for (executor, workers); return every class's entry."""
    store = load_cache()
    todo = {entry_key(c, executor, workers): c for c in configs if entry_key(c, executor, workers) not in store}
    if todo:
        LOG.info(f"calibrating {len(todo)} model structure(s) for the {executor} executor with {workers} worker(s) "
            "(once per machine and structure; a few seconds each)")
        threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
        request = {"configs": [c.as_dict() for c in todo.values()], "executor": executor, "threads": threads,
                   "launched": time.time(),
                   "width": min(width, MAX_WIDTH) if executor == "fused" else 1, "data_dir": data_dir}
        results = _measure_in_processes(request, workers)
        load = os.getloadavg()[0]
        for key, measured in zip(todo, results):
            store[key] = {**measured, "cpu": cpu_model(), "cores": os.cpu_count(), "executor": executor,
                          "workers": workers, "date": dt.datetime.now().isoformat(timespec="seconds"),
                          "load": round(load, 2)}
        _save(store)
    return {entry_key(c, executor, workers): store[entry_key(c, executor, workers)] for c in configs}


def launch_key(backend: str, workers: int) -> str:
    """Per backend and worker count, not per executor: process starts and stores, not training."""
    return f"launch|{cpu_model()}|{os.cpu_count()}|{backend}|w{workers}"


def cached_launch(backend: str, workers: int) -> float | None:
    entry = load_cache().get(launch_key(backend, workers))
    return None if entry is None else float(entry["launch_s"])


def launch_cost(config: TrialConfig, executor: str, workers: int, data_dir: str | None, trial_s: float) -> float:
    """Seconds a `study run` with `workers` workers spends around its trials (cached per CPU, backend, workers):
    the wall time of a real run of one one-epoch trial of `config` per worker, less `trial_s` (what the
    calibration says that trial costs, compile included)."""
    store = load_cache()
    key = launch_key(config.backend, workers)
    if key not in store:
        LOG.info(f"calibrating a whole `study run` with {workers} worker(s) (once per machine)")
        base = {k: v for k, v in config.replace(executor=executor).as_dict().items()
                if k not in ("seed", "epochs", "train_subset", "hparams") and v is not None}
        with tempfile.TemporaryDirectory(prefix="calibration-launch-") as tmp:
            spec = Path(tmp) / "launch.yaml"
            spec.write_text(json.dumps({"name": "calibration_launch", "epochs": 1, "train_subset": SMALL,
                                        "seeds": list(range(workers)), "base": base}))
            command = [sys.executable, "-m", "study", "run", str(spec), "--workers", str(workers), "--no-report",
                       "--tracking-uri", f"sqlite:///{Path(tmp) / 'mlflow.db'}",
                       "--storage", f"sqlite:///{Path(tmp) / 'optuna.db'}",
                       *(["--data-dir", data_dir] if data_dir else [])]
            tick = time.perf_counter()
            done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, env=_env())
            wall = time.perf_counter() - tick
        if done.returncode != 0:
            raise RuntimeError(f"calibration run failed: {(done.stderr.strip() or done.stdout.strip())[-300:]}")
        store = load_cache()  # another process may have written meanwhile
        store[key] = {"wall_s": wall, "trial_s": trial_s, "launch_s": max(wall - trial_s, 0.0), "cpu": cpu_model(),
                      "cores": os.cpu_count(), "executor": executor, "workers": workers,
                      "date": dt.datetime.now().isoformat(timespec="seconds"), "load": round(os.getloadavg()[0], 2)}
        _save(store)
    return float(store[key]["launch_s"])


def _save(store: dict[str, Any]) -> None:
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(store, indent=1, sort_keys=True))


def _env() -> dict[str, str]:
    """This checkout first on the path of the processes calibration starts."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                      os.environ.get("PYTHONPATH")]))}


def _measure_in_processes(request: dict[str, Any], workers: int) -> list[dict[str, Any]]:
    """`workers` measuring processes at once (their results averaged): the contention of a real run."""
    command = [sys.executable, "-m", "study.execution.calibration", json.dumps(request)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
             for _ in range(max(1, workers))]
    outputs = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"calibration failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return [{k: sum(o[i][k] for o in outputs) / len(outputs) for k in outputs[0][i]} for i in range(len(outputs[0]))]


def _fit(cold: float, t11: float, t12: float, t22: float) -> dict[str, float]:
    """T(n, e) = overhead + e (per_epoch + per_example n), from T(SMALL, 1), T(SMALL, 2), T(LARGE, 2)."""
    epoch_small = max(t12 - t11, 1e-6)
    per_example = max((t22 - t12) / (2 * (LARGE - SMALL)), 0.0)
    per_epoch = max(epoch_small - per_example * SMALL, 0.0)
    return {"overhead_s": max(t11 - epoch_small, 0.0), "per_epoch_s": per_epoch, "per_example_s": per_example,
            "compile_s": max(cold - t11, 0.0)}


def _measure(request: dict[str, Any]) -> list[dict[str, float]]:
    """In a fresh process: train each config's class at the three sizes (see the module docstring)."""
    from study.data.splits import SplitCache
    from study.execution.tracked import run_tracked
    from study.queue.storage import QueueSettings
    from study.queue.records import QueueItem
    from study.queue.trial_queue import TrialQueue
    from study.spec.designs import Trial
    from study.tracking.store import configure, experiment_id
    from study.training.backend import select_backend
    from study.training.executors.base import ExecutionSettings
    from study.training.executors.registry import executor_for

    configs = [TrialConfig(**c) for c in request["configs"]]
    select_backend(configs[0].backend, threads=request["threads"])
    with tempfile.TemporaryDirectory(prefix="calibration-") as tmp:
        uri = configure(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        exp_id = experiment_id("calibration", uri)
        splits = SplitCache(request["data_dir"])
        splits.dataset(configs[0].dataset)
        executor = executor_for(request["executor"])
        startup = time.time() - request["launched"]  # interpreter, imports, backend, data: a worker's start
        gc.collect()  # as a worker does once it has loaded (study.execution.worker._load): without it, the full
        gc.freeze()  # collection before every trial (Keras' clear_session) adds ~0.4 s per trial here
        queue = TrialQueue.open(f"sqlite:///{Path(tmp) / 'optuna.db'}", "calibration", QueueSettings())
        tick = time.perf_counter()
        queue.enqueue([QueueItem(key=f"k{i}", config={}) for i in range(4)])
        for _ in range(4):
            queue.complete(queue.lease(), 0.0, {})
        queue_s = (time.perf_counter() - tick) / 4
        settings = ExecutionSettings(save_model=True)
        out = []
        for config in configs:
            def timed(n: int, epochs: int) -> float:
                """Seconds per trial of a group; the first run of a (size, epochs) compiles (a fused program
                is specific to its data and length), the second is timed."""
                trials = [Trial(config.replace(train_subset=n, epochs=epochs, learning_rate=config.learning_rate
                                               * (1 + i * 1e-3)), {}) for i in range(request["width"])]
                seconds = []
                for _ in range(2):
                    tick = time.perf_counter()
                    run_tracked(trials, "calibration", exp_id, splits, settings, executor)
                    seconds.append((time.perf_counter() - tick) / request["width"])
                return seconds

            cold, warm = timed(SMALL, 1)
            fit = _fit(cold, warm, timed(SMALL, 2)[1], timed(LARGE, 2)[1])
            out.append({**fit, "startup_s": startup, "queue_s": queue_s})
    return out


if __name__ == "__main__":
    from study.core.quiet import quiet_start

    quiet_start()
    print(json.dumps(_measure(json.loads(sys.argv[1]))))
