"""The lesson grid trained by the fused executor on an accelerator: one prepared run, training only.

    python benchmarks/gpu_fused.py --data-dir DIR [--mode cross|shared] [--unroll N] [--limit N] [--out FILE]

Builds every trial of ablations/lesson_grid.yaml (executor fused, backend JAX), trains them
all through FusedExecutor.run (no queue, no MLflow: "training time plus logging" is what the
issue asks for, and logging is measured on the CPU benchmark) and prints one JSON line:
wall time, how much of it was the first group of each structure (compilation), trials,
trial-epochs per second, mean final val accuracy per seed (a sanity check), the device and
the versions. `--mode cross` groups each structure's trials of every seed (fewer, larger
programs, each trial its own batches); `shared` groups by structure and seed (shared batches,
what a CPU prefers). Run it in a fresh process per setting: JAX's persistent compilation cache
(JAX_COMPILATION_CACHE_DIR) is what a second run reuses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--mode", choices=["cross", "shared"], default="cross")
    parser.add_argument("--unroll", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None, help="only the first N trials (a smoke test)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--lesson-warmup-only", action="store_true",
                        help="train the grid as the spec has it; by default both warm-up variants are trained "
                             "(the grid of issue 11: warmup_cosine and warmup_cosine_corrected)")
    args = parser.parse_args()
    if args.unroll:
        os.environ["STUDY_FUSED_UNROLL"] = str(args.unroll)

    from study.training.backend import select_backend

    select_backend("jax")
    import jax
    import keras

    from study.config import structure_key
    from study.data.mnist import load_mnist
    from study.data.splits import SplitCache
    from study.spec.study_spec import load_spec
    from study.training.executors.base import Batch, ExecutionSettings, TrialHooks
    from study.training.fused.executor import FusedExecutor

    spec = load_spec(ROOT / "ablations" / "lesson_grid.yaml").with_overrides(backend="jax", executor="fused")
    configs = [t.config for t in spec.unique_trials()]
    if not args.lesson_warmup_only and not any(c.schedule == "warmup_cosine_corrected" for c in configs):
        configs += [c.replace(schedule="warmup_cosine_corrected") for c in configs if c.schedule == "warmup_cosine"]
    if args.epochs:
        configs = [c.replace(epochs=args.epochs) for c in configs]
    configs = configs[:args.limit] if args.limit else configs
    started = time.perf_counter()
    cache = SplitCache(preloaded={"mnist": load_mnist(args.data_dir)})
    splits = cache.get("mnist", configs[0].validation, configs[0].train_subset)
    load_s = time.perf_counter() - started
    settings = ExecutionSettings(save_model=False, share_batches=args.mode == "shared")
    executor = FusedExecutor()
    by_structure: dict[tuple, list] = defaultdict(list)
    for config in configs:
        by_structure[structure_key(config)].append(config)
    timings = []
    results = []
    train_started = time.perf_counter()
    for group in by_structure.values():  # one call per structure; the executor splits by seed in `shared` mode
        t = time.perf_counter()
        results += executor.run(Batch(group, [splits] * len(group), [TrialHooks() for _ in group],
                                      Path(tempfile.mkdtemp())), settings)
        timings.append(time.perf_counter() - t)
    train_s = time.perf_counter() - train_started
    epochs = sum(r.epochs_run for r in results)
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in results:
        by_seed[r.config.seed].append(r.final.get("final_val_accuracy", float("nan")))
    out = {
        "mode": args.mode, "unroll": int(os.environ.get("STUDY_FUSED_UNROLL", 0)) or None,
        "device": str(jax.devices()[0]), "platform": jax.devices()[0].platform,
        "trials": len(results), "trial_epochs": epochs, "structures": len(by_structure),
        "train_wall_s": round(train_s, 2), "data_load_s": round(load_s, 2),
        "per_structure_s": [round(t, 2) for t in timings],
        "trial_epochs_per_s": round(epochs / train_s, 1),
        "mean_val_accuracy_by_seed": {s: round(sum(v) / len(v), 4) for s, v in sorted(by_seed.items())},
        "versions": {"jax": jax.__version__, "keras": keras.__version__, "python": platform.python_version()},
        "compilation_cache": jax.config.jax_compilation_cache_dir,
    }
    line = json.dumps(out)
    print(line, flush=True)
    if args.out:
        Path(args.out).write_text(line + "\n")


if __name__ == "__main__":
    main()
