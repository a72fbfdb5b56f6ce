"""What the per-epoch mechanism probes (study.training.probes) cost: training with and without them.

    python benchmarks/probes.py [--data-dir DIR] [--repeats 3] [--epochs 5] [--group 8]
    python benchmarks/probes.py --markdown benchmarks/results/<date>-<host>-probes.json   (rewrite its .md)

The lesson's first model (4 x 32 ReLU, Xavier, SGD 0.01, batch 32, 5 epochs, all 60,000 training images,
validation on the test set: ablations/lesson_baseline.yaml) trained by
  keras / tensorflow, keras / jax: one trial per executor call;
  fused / jax: a group of `--group` trials of that structure and seed (init x learning rate), one call;
each in its own process (one backend per process). In a process, one untimed warm-up call per arm (with
probes, without) compiles both; then `--repeats` timed pairs, interleaved and alternating which arm goes
first (the machine is shared). Reported per setting: the median wall time per call with and without probes
and their relative difference (noisy: other jobs share the cores), and the probes' own time, measured
directly around everything the probes add (the Keras executor's ProbeCallback, the fused executor's
per-epoch probe call) and divided by the probed call's wall time (the steady-state overhead); also the
one-time first probe call (tracing and compiling, per model structure and process; a reused compiled model
keeps it). Writes
benchmarks/results/<date>-<host>-probes.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = (("keras", "tensorflow"), ("keras", "jax"), ("fused", "jax"))
BUDGET = 0.05  # the limit: probes cost under 5% of training time


def inner(executor: str, backend: str, data_dir: str, repeats: int, epochs: int, group: int) -> dict:
    """One setting, in this process: warm-up, then interleaved timed pairs."""
    from study.training.backend import select_backend

    select_backend(backend)
    from study.config import TrialConfig
    from study.data.mnist import load_mnist
    from study.data.splits import SplitCache
    from study.training import probes
    from study.training.executors.base import Batch, ExecutionSettings, TrialHooks
    from study.training.executors.registry import executor_for
    from study.training.fused.executor import FusedExecutor

    spent: list[float] = []

    def timed(method):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            out = method(*args, **kwargs)
            spent.append(time.perf_counter() - started)  # both return host values: the work is done
            return out
        return wrapper

    # Everything the probes add: the Keras executor's callback (probe built, batch moved, probes computed,
    # logs extended) and the fused executor's per-epoch call.
    probes.ProbeCallback.on_train_begin = timed(probes.ProbeCallback.on_train_begin)
    probes.ProbeCallback.on_epoch_end = timed(probes.ProbeCallback.on_epoch_end)
    FusedExecutor._probe = timed(FusedExecutor._probe)

    base = TrialConfig(hidden_layers=4, units=32, activation="relu", init="xavier", optimizer="sgd",
                       learning_rate=0.01, batch_size=32, epochs=epochs, validation="test", backend=backend,
                       executor=executor, seed=0)
    if executor == "fused":
        rates = (0.005, 0.01, 0.02, 0.05)
        configs = [base.replace(init=init, learning_rate=rate) for init in ("xavier", "he")
                   for rate in rates][:group]
    else:
        configs = [base]
    cache = SplitCache(preloaded={"mnist": load_mnist(data_dir)})
    splits = cache.get("mnist", "test", None)
    runner = executor_for(executor)

    def call(with_probes: bool) -> tuple[float, float, float]:
        spent.clear()
        batch = Batch(configs=configs, splits=[splits] * len(configs), hooks=[TrialHooks() for _ in configs],
                      workdir=Path(tempfile.mkdtemp(prefix="bench-probes-")), stop=threading.Event())
        started, cpu = time.perf_counter(), time.process_time()
        runner.run(batch, ExecutionSettings(save_model=False, probes=with_probes))
        return time.perf_counter() - started, time.process_time() - cpu, sum(spent)

    first_call = None
    warm = {}
    for with_probes in (True, False):
        wall, _, _ = call(with_probes)
        warm[with_probes] = wall
        if with_probes:
            first_call = max(spent) if spent else None
    rows = []
    for repeat in range(repeats):
        for with_probes in ((True, False) if repeat % 2 == 0 else (False, True)):
            wall, cpu, probe_s = call(with_probes)
            rows.append({"repeat": repeat, "probes": with_probes, "wall_s": round(wall, 4), "cpu_s": round(cpu, 3),
                         "probe_s": round(probe_s, 5), "load_1min": round(os.getloadavg()[0], 2)})
    on = [r["wall_s"] for r in rows if r["probes"]]
    off = [r["wall_s"] for r in rows if not r["probes"]]
    cpu_on = [r["cpu_s"] for r in rows if r["probes"]]
    cpu_off = [r["cpu_s"] for r in rows if not r["probes"]]
    share = [r["probe_s"] / r["wall_s"] for r in rows if r["probes"]]
    pairs = [(a, b) if a["probes"] else (b, a) for a, b in zip(rows[::2], rows[1::2])]  # (with, without), adjacent
    return {"executor": executor, "backend": backend, "trials_per_call": len(configs), "epochs": epochs,
            "warmup_s": {"probes": round(warm[True], 3), "no_probes": round(warm[False], 3)},
            "first_probe_call_s": round(first_call, 4) if first_call is not None else None,
            "median_s_probes": statistics.median(on), "median_s_no_probes": statistics.median(off),
            "wall_overhead": statistics.median(on) / statistics.median(off) - 1,
            "median_cpu_s_probes": statistics.median(cpu_on), "median_cpu_s_no_probes": statistics.median(cpu_off),
            "cpu_overhead": statistics.median(cpu_on) / statistics.median(cpu_off) - 1,
            "paired_wall_overhead": statistics.median(a["wall_s"] - b["wall_s"] for a, b in pairs)
            / statistics.median(off),
            "paired_cpu_overhead": statistics.median(a["cpu_s"] - b["cpu_s"] for a, b in pairs)
            / statistics.median(cpu_off),
            "probe_share_median": statistics.median(share),
            "probe_s_per_epoch": statistics.median(r["probe_s"] for r in rows if r["probes"]) / epochs,
            "runs": rows}


def markdown(report: dict) -> str:
    lines = [f"# Cost of the mechanism probes, {report['date']}", "",
             f"Machine: {report['machine'].get('cpu', '?')}, {report['machine'].get('cores', '?')} cores (shared "
             f"with other jobs: load average {report['uptime_before']} before, {report['uptime_after']} after); "
             f"Keras {report['versions'].get('keras')}, TensorFlow {report['versions'].get('tensorflow-cpu')}, "
             f"JAX {report['versions'].get('jax')}.", "",
             "The lesson's first model (4 x 32 ReLU, Xavier, SGD 0.01, batch 32, "
             f"{report['epochs']} epochs, 60,000 training images, validation on the 10,000 test images); fused: "
             f"a group of {report['group']} trials (init x learning rate, one seed). {report['repeats']} interleaved "
             "pairs per setting (with/without, order alternating) after one untimed warm-up per arm; medians. "
             "`probe share` = time inside what the probes add / the probed call's wall time (steady state: the "
             "figure the budget applies to); `paired wall` and `paired CPU` = the median over pairs of (with - "
             "without), over the median without (the process's wall and CPU time; both carry the shared "
             "machine's noise: other jobs, and for CPU time the math libraries' spinning threads).", "",
             "| executor | backend | trials / call | wall with probes | wall without | paired wall | paired CPU "
             "| probe share | probe ms / epoch | first probe call (compile) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["settings"]:
        first = f"{r['first_probe_call_s']:.2f} s" if r["first_probe_call_s"] is not None else "-"
        lines.append(f"| {r['executor']} | {r['backend']} | {r['trials_per_call']} | {r['median_s_probes']:.2f} s "
                     f"| {r['median_s_no_probes']:.2f} s | {100 * r['paired_wall_overhead']:+.1f}% "
                     f"| {100 * r['paired_cpu_overhead']:+.1f}% "
                     f"| {100 * r['probe_share_median']:.2f}% | {1000 * r['probe_s_per_epoch']:.1f} | {first} |")
    worst = max(r["probe_share_median"] for r in report["settings"])
    lines += ["", f"Largest steady-state probe share: {100 * worst:.2f}% (budget {100 * BUDGET:.0f}%): "
              f"{'within' if worst < BUDGET else 'OVER'} budget. The first probe call per model structure and "
              "process traces and compiles the probe (JAX: XLA's persistent cache keeps the compiled program "
              "for later processes); the Keras executor on JAX reuses it with the compiled model, the fused "
              "executor per program. On TensorFlow every trial builds a fresh model, so its probe share already "
              "includes building and first calling each trial's probe.", "",
              "The paired differences are whole trainings with and without probes: on a shared 2-core machine "
              "they scatter by more than the probes cost (the same epoch's training time varies by a factor of 2 "
              "or more between runs), so they bound the cost only loosely; the probe share is the direct "
              "measurement.", "",
              f"This benchmark ran for {report['minutes']:.1f} minutes.", "",
              f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR", str(ROOT.parent / "shared/data/mnist")))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--inner", nargs=2, metavar=("EXECUTOR", "BACKEND"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--markdown", type=Path, help="only rewrite the .md of this results .json")
    args = parser.parse_args()
    if args.markdown:
        args.markdown.with_suffix(".md").write_text(markdown(json.loads(args.markdown.read_text())))
        return
    if args.inner:
        print(json.dumps(inner(*args.inner, args.data_dir, args.repeats, args.epochs, args.group)))
        return
    from study.tracking.environment import machine, versions

    started = time.perf_counter()
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    settings = []
    for executor, backend in SETTINGS:
        out = subprocess.run([sys.executable, __file__, "--inner", executor, backend, "--data-dir", args.data_dir,
                              "--repeats", str(args.repeats), "--epochs", str(args.epochs), "--group", str(args.group)],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode != 0 or not lines:
            raise SystemExit(f"{executor}/{backend}: exit {out.returncode}\n{out.stderr[-3000:]}")
        settings.append(json.loads(lines[-1]))
        print(f"{executor}/{backend}: probe share {100 * settings[-1]['probe_share_median']:.2f}%, "
              f"paired wall overhead {100 * settings[-1]['paired_wall_overhead']:+.1f}%", flush=True)
    now = dt.datetime.now()
    report = {"date": now.isoformat(timespec="seconds"), "machine": machine(), "versions": versions(),
              "uptime_before": uptime_before.split("load average:")[-1].strip(),
              "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
              .split("load average:")[-1].strip(),
              "epochs": args.epochs, "repeats": args.repeats, "group": args.group, "budget": BUDGET,
              "settings": settings, "minutes": (time.perf_counter() - started) / 60,
              "command": "benchmarks/probes.py " + " ".join(sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{now:%Y-%m-%d}-{machine().get('host') or socket.gethostname()}-probes"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(stem.with_suffix(".md"))


if __name__ == "__main__":
    main()
