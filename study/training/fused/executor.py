"""FusedExecutor: trains every trial of a batch that shares a structure and a seed as one XLA program.

Per trial, as the Keras executor does: its own initial weights (from its seed and init),
its own dropout randomness, its own learning rate each epoch (constant, both warm-up +
cosine variants, plateau on its own val_loss), early stopping, the best epoch's weights
kept and restored for the one test evaluation, the kept model saved as `.keras`, the
same per-epoch metric names. Its batch order is the one the Keras executor draws on JAX
for that seed (NumPy's generator seeded by the trial's seed, one permutation skipped for
Keras' symbolic build, then one per epoch), so trials of one seed share their batches.
Not bit-identical to Keras (batched arithmetic rounds differently, and initial weights
are drawn per variable): its equivalence is measured (benchmarks/) and tested. Bit-identical
to itself whichever trials share a program: every program has the same number of lanes
(study.training.fused.lanes), so a trial's numbers follow from its config alone.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from study.config import TrialConfig, structure_key
from study.core.errors import Interrupted
from study.core.status import TrialStatus
from study.data.arrays import Splits
from study.data.registry import dataset_info
from study.training.executors.base import Batch, ExecutionSettings, TrialHooks
from study.training.fused.controllers import TrialController
from study.training.fused.initial_state import (NotFusable, SeedReplay, build_template, learning_rate_index,
                                                optimizer_values, rebuilt_values)
from study.training.fused.lanes import lane_width, lanes_of, parts, stack
from study.training.fused.memory import max_group
from study.training.fused.program import FusedProgram
from study.training.models import build_model, model_inputs
from study.training.optimizers import build_optimizer
from study.training.probes import Probe, probe_batch
from study.training.results import TrialResult, summarize_history


def scan_unroll() -> int:
    """Steps per scan-loop iteration (STUDY_FUSED_UNROLL). 1: on an H200, unrolling 16 steps made the
    lesson grid's programs take over 150 s to compile, more than all of training (benchmarks/gpu_fused.py)."""
    return max(1, int(os.environ.get("STUDY_FUSED_UNROLL", "1")))


class FusedExecutor:
    """Many trials of one structure per program (JAX). Groups come from the queue (study.queue) by
    `fused_group`: same structure, data, epochs, batch size and seed."""

    name = "fused"
    bit_identical_to_keras = False

    def __init__(self) -> None:
        if keras.backend.backend() != "jax":
            raise NotFusable(f"the fused executor needs the JAX backend (Keras runs {keras.backend.backend()})")
        self._programs: dict[tuple, FusedProgram] = {}
        self._templates: dict[tuple, SeedReplay] = {}
        self._device: dict[tuple, tuple] = {}
        self._probes: dict[int, Probe] = {}  # per program (id): its jitted, vmapped probes

    def run(self, batch: Batch, settings: ExecutionSettings) -> list[TrialResult]:
        """Train the batch as groups of one structure and seed, each cut into programs of the platform's fixed
        number of lanes (a short one padded); results in order."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for index, config in enumerate(batch.configs):
            groups[(structure_key(config), config.dataset, config.validation, config.train_subset, config.epochs,
                    config.batch_size, config.seed if settings.share_batches else None)].append(index)
        results: list[TrialResult | None] = [None] * len(batch.configs)
        for indices in groups.values():
            program = self._program(batch.configs[indices[0]])
            splits = batch.splits[indices[0]]
            data = self._data(program.model, splits)
            width = self._width(program, batch.configs[indices[0]], settings, data)
            for part in parts(indices, width):
                trained = self._train([batch.configs[i] for i in part], program, data,
                                      [batch.hooks[i] for i in part], batch, settings, part, width)
                for i, result in zip(part, trained):
                    results[i] = result
        return [r for r in results if r is not None]

    @staticmethod
    def _width(program: FusedProgram, config: TrialConfig, settings: ExecutionSettings, data: tuple) -> int:
        """The platform's lanes, unless fewer fit in memory (then results depend on this machine's memory)."""
        width = lane_width()
        fits = max_group(program.model, program.optimizer, config.batch_size, settings.eval_batch_size,
                         sum(a.nbytes for a in data))
        if fits < width:
            warnings.warn(f"only {fits} of the fused executor's {width} lanes fit in memory for this model: its "
                          "trials' numbers now depend on this machine's memory (executor: keras does not)",
                          stacklevel=2)
        return min(width, fits)

    # ------------------------------------------------------------------ one program of `width` lanes

    def _train(self, configs: list[TrialConfig], program: FusedProgram, data: tuple, hooks: list[TrialHooks],
               batch: Batch, settings: ExecutionSettings, positions: list[int], width: int) -> list[TrialResult]:
        """Train up to `width` trials in `width` lanes; a lane past the trials copies the first one and stays
        inactive (frozen), its numbers dropped."""
        started = time.perf_counter()
        x_train, y_train, x_val, y_val, valid_val, x_test, y_test, valid_test = data
        model, optimizer = program.model, program.optimizer
        trainable, non_trainable = self._initial_variables(configs, model, width)
        lr_index = learning_rate_index(optimizer)
        opt = stack([optimizer_values(optimizer, c.learning_rate) for c in configs], width)
        state = (trainable, non_trainable, opt)
        best = (jax.tree.map(jnp.copy, trainable), jax.tree.map(jnp.copy, non_trainable))
        has_best = np.zeros(len(configs), dtype=bool)
        controllers = [TrialController(c) for c in configs]
        history: list[dict[str, list[float]]] = [{m: [] for m in _METRICS} for _ in configs]
        size, batch_size = len(y_train), configs[0].batch_size
        orders = BatchOrders(list(lanes_of([c.seed for c in configs], width, configs[0].seed)), size, batch_size)
        for epoch in range(configs[0].epochs):
            active = lanes_of([not (c.stopped or c.diverged or c.stopped_by_hook) for c in controllers], width, False)
            if not active.any():
                break
            _check(batch)
            rates = [c.rate_for_epoch(epoch) for c in controllers]
            opt = list(state[2])
            opt[lr_index] = jnp.asarray(lanes_of(rates, width, rates[0]), dtype=opt[lr_index].dtype)
            state = (state[0], state[1], opt)
            steps, rest = orders.epoch()
            k = width  # every leaf its own buffer: the carry is donated to the program
            carry = (state, jnp.asarray(active), (jnp.zeros(k, jnp.float32), jnp.zeros(k, jnp.int32),
                                                  jnp.zeros(k, jnp.int32), jnp.zeros(k, bool)))
            for indices in (steps, rest):
                if indices is not None:
                    carry = program.train_chunk(carry, x_train, y_train, jnp.asarray(indices), shared=orders.shared)
            state, _, (loss_sum, correct, count, diverged) = carry
            _check(batch)
            val_loss, val_acc = _evaluate(program, state[0], state[1], x_val, y_val, valid_val)
            probed = self._probe(program, state, x_train, y_train) if settings.probes else [{}] * len(configs)
            loss_sum, correct, count, diverged = map(np.asarray, (loss_sum, correct, count, diverged))
            keep = np.zeros(width, dtype=bool)
            for k, controller in enumerate(controllers):
                if not active[k]:
                    continue
                loss = math.nan if diverged[k] or not count[k] else float(loss_sum[k] / count[k])
                logs = {"loss": loss, "accuracy": float(correct[k] / count[k]) if count[k] else math.nan,
                        "val_loss": float(val_loss[k]), "val_accuracy": float(val_acc[k]), "learning_rate": rates[k],
                        **probed[k]}
                for name, value in logs.items():
                    history[k].setdefault(name, []).append(value)
                hooks[k].on_epoch_end(epoch, logs)
                if not math.isfinite(loss):
                    controller.diverged = True
                    continue
                keep[k] = controller.keeps(loss, logs["val_loss"])
                controller.end_epoch(epoch, logs["val_loss"])
                if epoch + 1 != configs[k].epochs and hooks[k].should_stop(epoch, logs):
                    controller.stopped_by_hook = True
            if keep.any():
                mask = jnp.asarray(keep)
                best = (jax.tree.map(lambda n, o: _where(mask, n, o), state[0], best[0]),
                        jax.tree.map(lambda n, o: _where(mask, n, o), state[1], best[1]))
                has_best |= keep[:len(configs)]
        return self._finish(configs, program, best, has_best, history, controllers, data, batch, settings,
                            positions, (time.perf_counter() - started) / len(configs))

    def _finish(self, configs, program, best, has_best, history, controllers, data, batch, settings, positions,
                seconds_each) -> list[TrialResult]:
        """Test the kept weights once, save the kept models, and make the results."""
        *_, x_test, y_test, valid_test = data
        test_loss, test_acc = _evaluate(program, best[0], best[1], x_test, y_test, valid_test)
        model = program.model
        kept = jax.device_get(best) if settings.save_model else best  # one transfer, then plain slices per trial
        results = []
        for k, config in enumerate(configs):
            final = summarize_history(history[k])
            model_path = None
            if has_best[k] and "best_epoch" in final:
                final["test_loss"], final["test_accuracy"] = float(test_loss[k]), float(test_acc[k])
                if settings.save_model:
                    model_path = self._save(model, kept, k, batch.workdir / f"trial-{positions[k]}")
            final["params"] = float(model.count_params())
            diverged = controllers[k].diverged or any(not math.isfinite(v) for v in history[k]["loss"])
            results.append(TrialResult(config=config, history=history[k], final=final, wall_time_s=seconds_each,
                                       model_path=model_path, stopped_by_hook=controllers[k].stopped_by_hook,
                                       status=(TrialStatus.DIVERGED if diverged else TrialStatus.COMPLETED).value))
        return results

    @staticmethod
    def _save(model: Any, best: tuple, k: int, directory: Path) -> Path:
        for variable, value in zip(model.trainable_variables, best[0]):
            variable.assign(value[k])
        for variable, value in zip(model.non_trainable_variables, best[1]):
            variable.assign(value[k])
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "best_model.keras"
        model.save(str(path))
        return path

    def _probe(self, program: FusedProgram, state: tuple, x_train: jax.Array, y_train: jax.Array) -> list[dict]:
        """Each trial's mechanism probes at this epoch's end (study.training.probes), one vmapped call."""
        probe = self._probes.get(id(program))
        if probe is None:
            probe = self._probes[id(program)] = Probe(program.model)
        return probe.group_values(state[0], state[1], *probe_batch(x_train, y_train))

    # ------------------------------------------------------------------ what a group is built from

    def _program(self, config: TrialConfig) -> FusedProgram:
        key = structure_key(config)
        if key not in self._programs:
            model = self._template(config).model
            # Compiled like the Keras executor's models, so a saved kept model evaluates as it loads.
            model.compile(optimizer=build_optimizer(config), loss=keras.losses.SparseCategoricalCrossentropy(),
                          metrics=["accuracy"])
            optimizer = build_optimizer(config)
            optimizer.build(model.trainable_variables)
            self._programs[key] = FusedProgram(model, optimizer, unroll=scan_unroll())
        return self._programs[key]

    def _template(self, config: TrialConfig) -> SeedReplay:
        """A model of this structure and init whose seeds can be replayed for any trial seed, checked once
        against a fresh build (an unusable replay makes every trial of it rebuild its model instead)."""
        key = (structure_key(config), config.init, config.dataset)
        if key not in self._templates:
            build = _builder(config)
            replay = SeedReplay(build_template(build, config))
            if replay.usable:
                check = config.replace(seed=TEMPLATE_CHECK_SEED)
                expected = rebuilt_values(build, check)
                replay.usable = all(np.array_equal(a, b) for a, b in zip(replay.values(check.seed), expected))
            self._templates[key] = replay
        return self._templates[key]

    def _initial_variables(self, configs: Sequence[TrialConfig], model: Any, width: int) -> tuple[list, list]:
        """Each trial's initial weights, stacked over `width` lanes (see lanes.stack)."""
        position = {id(v): i for i, v in enumerate(model.variables)}
        trainable_at = [position[id(v)] for v in model.trainable_variables]
        non_trainable_at = [position[id(v)] for v in model.non_trainable_variables]
        per_trial = []
        for config in configs:
            replay = self._template(config)
            per_trial.append(replay.values(config.seed) if replay.usable else rebuilt_values(_builder(config), config))
        return (stack([[values[i] for i in trainable_at] for values in per_trial], width),
                stack([[values[i] for i in non_trainable_at] for values in per_trial], width))

    def _data(self, model: Any, splits: Splits) -> tuple:
        """The split on the device, inputs shaped for the model; evaluation sets padded to whole chunks."""
        key = (id(splits.x_train), id(splits.x_val), id(splits.x_test), tuple(model.input_shape[1:]))
        if key not in self._device:
            val = _padded(model_inputs(model, splits.x_val), splits.y_val)
            test = _padded(model_inputs(model, splits.x_test), splits.y_test)
            self._device = {key: (jnp.asarray(model_inputs(model, splits.x_train)), jnp.asarray(splits.y_train),
                                  *val, *test)}
        return self._device[key]


_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
TEMPLATE_CHECK_SEED = 1  # the seed a template's replayed draws are checked against a fresh build with


def _builder(config: TrialConfig):  # noqa: ANN202 - config -> uncompiled Keras model
    info = dataset_info(config.dataset)
    return lambda c: build_model(c, info)


class BatchOrders:
    """Each trial's batches as the Keras executor draws them on JAX: NumPy's generator seeded by the trial's
    seed, one permutation skipped (Keras' symbolic build takes a batch first), then one per epoch. Trials of
    one seed get one order (`shared`: a [steps, batch] index array), else one per trial ([steps, trials, batch])."""

    def __init__(self, seeds: list[int], size: int, batch_size: int) -> None:
        self.seeds, self.size, self.batch_size = seeds, size, batch_size
        self.shared = len(set(seeds)) == 1
        self.generators = {seed: np.random.RandomState(seed) for seed in set(seeds)}
        for generator in self.generators.values():
            generator.permutation(size)

    def epoch(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(full batches, the short last batch) of the next epoch, as index arrays (None where there is none)."""
        perms = {seed: g.permutation(self.size) for seed, g in self.generators.items()}
        full = self.size // self.batch_size
        cut = full * self.batch_size
        if self.shared:
            perm = perms[self.seeds[0]]
            steps = perm[:cut].reshape(full, self.batch_size)
            rest = perm[cut:][None]
        else:
            steps = np.stack([perms[s][:cut].reshape(full, self.batch_size) for s in self.seeds], axis=1)
            rest = np.stack([perms[s][cut:] for s in self.seeds])[None]
        return (steps if full else None), (rest if self.size % self.batch_size else None)
EVAL_CHUNK = 2048


def _where(mask: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)


def _padded(x: np.ndarray, y: np.ndarray) -> tuple:
    """x and y padded to whole evaluation chunks, and which rows are real."""
    shape = x.shape[1:]
    chunks = max(1, math.ceil(len(x) / EVAL_CHUNK))
    pad = chunks * EVAL_CHUNK - len(x)
    x = np.concatenate([x, np.zeros((pad, *shape), x.dtype)])
    y = np.concatenate([y, np.zeros(pad, y.dtype)])
    valid = np.arange(len(x)) < len(x) - pad
    return (jnp.asarray(x.reshape(chunks, EVAL_CHUNK, *shape)), jnp.asarray(y.reshape(chunks, EVAL_CHUNK)),
            jnp.asarray(valid.reshape(chunks, EVAL_CHUNK)))


def _evaluate(program: FusedProgram, trainable, non_trainable, x, y, valid) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and accuracy per trial over a padded evaluation set (inference mode)."""
    loss = correct = 0
    for i in range(x.shape[0]):
        chunk_loss, chunk_correct = program.evaluate(trainable, non_trainable, x[i], y[i], valid[i])
        loss, correct = loss + chunk_loss, correct + chunk_correct
    count = float(np.asarray(valid).sum())
    return np.asarray(loss) / count, np.asarray(correct) / count


def _check(batch: Batch) -> None:
    if batch.stop.is_set():
        raise Interrupted()
