"""Where a fused training step spends its time, measured with JAX's profiler and attributed by XLA metadata.

    python benchmarks/fused_profile.py [--data-dir DIR] [--structure full|plain] [--trials 12]

Trains one group of lesson-grid trials (one structure, one seed, shared batches) for one
epoch on a 4,096-image subset under `jax.profiler.trace`, reads every XLA op's time from
the trace, and assigns each op to what it computes through the `op_name` metadata XLA
keeps from the JAX program (Keras layer names survive there: dense_0, batch_norm_1,
dropout_2, the optimizer): dense matmuls, batch norm, dropout's random bits, the
optimizer's update, the loss, the batch gather, the masking of stopped trials, other.
Prints one table; used for the fused executor's notes in docs/executors.md ("The fused executor, measured").
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CATEGORIES = [  # first match wins, on the op's JAX name stack
    ("dropout random bits", ("_bernoulli", "_uniform", "threefry", "random_bits")),
    ("dropout mask", ("dropout",)),
    ("batch norm", ("batch_norm",)),
    ("optimizer update", ("adam", "sgd", "stateless_apply", "optimizer")),
    ("loss and accuracy", ("sparse_categorical_crossentropy", "argmax", "log_softmax", "/log", "softmax")),
    ("dense layers (matmul, bias, activation)", ("dense", "softmax", "relu", "sigmoid", "dot_general")),
    ("batch gather", ("gather", "dynamic_slice")),
    ("masking stopped trials (where)", ("select_n",)),
]


def categorize(op_name: str) -> str:
    for name, keys in CATEGORIES:
        if any(k in op_name for k in keys):
            return name
    return "other (copies, loop bookkeeping)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR"))
    parser.add_argument("--structure", choices=["full", "plain"], default="full",
                        help="full: ReLU + BN + dropout 0.2 + Adam; plain: ReLU + SGD (the lesson's first model)")
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()

    from study.training.backend import select_backend

    select_backend("jax", threads=1)
    import jax
    import jax.numpy as jnp

    from study.config import TrialConfig
    from study.data.mnist import load_mnist
    from study.data.splits import SplitCache
    from study.training.executors.base import Batch, ExecutionSettings, TrialHooks
    from study.training.fused.executor import FusedExecutor
    from study.training.fused.initial_state import optimizer_values
    from study.training.fused.lanes import stack

    extra = (dict(optimizer="adam", learning_rate=0.001, batch_norm=True, dropout=0.2) if args.structure == "full"
             else dict(optimizer="sgd", learning_rate=0.01))
    base = TrialConfig(backend="jax", executor="fused", epochs=1, validation="holdout", train_subset=4096, **extra)
    configs = [base.replace(init=("normal", "xavier", "he")[i % 3], learning_rate=base.learning_rate * (1 + i % 4))
               for i in range(args.trials)]
    splits = SplitCache(preloaded={"mnist": load_mnist(args.data_dir)}).get("mnist", "holdout", 4096)
    executor = FusedExecutor()

    def run() -> None:
        executor.run(Batch(configs, [splits] * len(configs), [TrialHooks() for _ in configs],
                           Path(tempfile.mkdtemp())), ExecutionSettings(save_model=False))

    run()  # compile outside the trace
    program = executor._program(base)
    k = len(configs)
    trainable, non_trainable = executor._initial_variables(configs, program.model, k)
    opt = stack([optimizer_values(program.optimizer, 0.001)] * k, k)
    carry = ((trainable, non_trainable, opt), jnp.ones(k, bool),
             (jnp.zeros(k), jnp.zeros(k, jnp.int32), jnp.zeros(k, jnp.int32), jnp.zeros(k, bool)))
    hlo = program.train_chunk.lower(carry, jnp.zeros((4096, 784)), jnp.zeros(4096, jnp.int32),
                                    jnp.zeros((128, 32), jnp.int32)).compile().as_text()
    names = {m["name"]: m["op"] for m in (re.match(r"\s*%(?P<name>[\w.\-]+) = .*?op_name=\"(?P<op>[^\"]*)\"", line)
                                         for line in hlo.splitlines()) if m}
    trace_dir = tempfile.mkdtemp()
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        run()
    events = json.load(gzip.open(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]))["traceEvents"]
    by_category: collections.Counter = collections.Counter()
    for event in events:
        name = event.get("name", "")
        if event.get("ph") == "X" and name in names:
            by_category[categorize(names[name])] += event.get("dur", 0)
    total = sum(by_category.values())
    print(f"structure {args.structure}, {k} trials, one epoch of 4,096 images, XLA op time {total / 1e6:.3f} s "
          f"(profiled; attributed by XLA op_name metadata)")
    print("| part of the step | share of op time |\n|---|---|")
    for name, us in by_category.most_common():
        print(f"| {name} | {100 * us / total:.1f}% |")


if __name__ == "__main__":
    main()
