"""What a spec will cost before anything is queued: trials, trial-epochs, and predicted wall time per executor and
worker count on this machine (from study.execution.calibration), plus, when an earlier run of the study exists in
the tracking store, the difference each main effect can detect at the spec's seeds and the seeds a margin needs.

The prediction is a sum over the trials of the calibrated cost of each trial's class,

    wall = launch + compile per class + sum_trials (overhead + queue + epochs (per_epoch + per_example n)) / W

with W workers measured under their own contention (each worker count is calibrated with that many processes at
once); launch is what a whole `study run` adds around its trials (its start, the stores, the worker processes'
start), measured by one real run (study.execution.calibration.launch_cost). An adaptive spec gives a range: its start seeds (every config) up to max_seeds (every config).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from study.config import FACTORS, TrialConfig
from study.core.text import format_duration
from study.execution.calibration import SMALL, cached, cached_launch, calibrate, cost_class, entry_key, launch_cost
from study.spec.designs import Trial
from study.spec.study_spec import StudySpec

LOG = logging.getLogger(__name__)


@dataclass
class Prediction:
    executor: str
    workers: int
    seconds: float  # the whole spec (an adaptive one: at max_seeds)
    low_seconds: float  # an adaptive spec's start seeds only; = seconds otherwise
    calibrated: str  # date and CPU of the calibration used


@dataclass
class Plan:
    trials: int
    trial_epochs: int
    min_trials: int  # an adaptive spec's start round; = trials otherwise
    min_trial_epochs: int
    predictions: list[Prediction] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # (executor, workers) without a calibration, why
    detectable: list[tuple[str, float, float, int | None]] = field(default_factory=list)  # effect, sd, mde, seeds


def spec_trials(spec: StudySpec) -> tuple[list[Trial], list[Trial]]:
    """(every trial the spec may run, the trials it runs for sure): for an adaptive spec, up to max_seeds and the
    start seeds."""
    trials = spec.unique_trials()
    if spec.adaptive is None:
        return trials, trials
    most = set(spec.seeds[:spec.adaptive.max_seeds])
    start = set(spec.seeds[:spec.adaptive.start_seeds])
    return [t for t in trials if t.config.seed in most], [t for t in trials if t.config.seed in start]


def executors_for(spec: StudySpec) -> list[str]:
    """The spec's executor first, then the others its backend allows."""
    choices = list(FACTORS["executor"].choices)
    own = spec.base.executor
    return [own] + [e for e in choices if e != own and _allowed(spec.base, e)]


def _allowed(config: TrialConfig, executor: str) -> bool:
    from study.spec.fields import config_error

    return config_error(config.replace(executor=executor)) is None


def worker_counts() -> list[int]:
    cores = os.cpu_count() or 1
    return sorted({1, cores})


def _examples(config: TrialConfig, data: dict, memo: dict) -> int:
    """Training examples of a trial, from the verified datasets (`data`: name -> DatasetArrays)."""
    key = (config.dataset, config.validation, config.train_subset)
    if key not in memo:
        from study.data.splits import SplitCache

        memo[key] = int(SplitCache(preloaded=data).get(*key).x_train.shape[0])
    return memo[key]


def _group_width(trials: list[Trial]) -> int:
    """Configs sharing a structure and seed: the fused executor's group."""
    counts = Counter((cost_class(t.config), t.config.seed) for t in trials)
    return max(counts.values()) if counts else 1


def predict_seconds(trials: list[Trial], entries: dict[str, dict], executor: str, workers: int,
                    data: dict, memo: dict, launch_s: float | None = None) -> float:
    """The formula of the module docstring; without a measured `launch_s`, a worker's own start stands in."""
    total = 0.0
    for t in trials:
        e = entries[entry_key(t.config, executor, workers)]
        n = _examples(t.config, data, memo)
        total += e["overhead_s"] + e["queue_s"] + t.config.epochs * (e["per_epoch_s"] + e["per_example_s"] * n)
    some = next(iter(entries.values()))
    compile_s = sum(entries[entry_key(t.config, executor, workers)]["compile_s"]
                    for t in {cost_class(t.config): t for t in trials}.values())
    return (some["startup_s"] if launch_s is None else launch_s) + compile_s + total / max(workers, 1)


def _launch(configs: list[TrialConfig], entries: dict[str, dict], executor: str, workers: int,
            data_dir: str | None, measure: bool) -> float | None:
    """The launch cost from the cache, or (with `measure`) from one real run of the first cost class."""
    if not measure:
        return cached_launch(configs[0].backend, workers)
    first = configs[0]
    e = entries[entry_key(first, executor, workers)]
    trial_s = e["compile_s"] + e["overhead_s"] + e["queue_s"] + e["per_epoch_s"] + e["per_example_s"] * SMALL
    try:
        return launch_cost(first, executor, workers, data_dir, trial_s)
    except RuntimeError as exc:
        LOG.warning(f"{exc}; the prediction uses a worker's start instead")
        return None


def make_plan(spec: StudySpec, data: dict, data_dir: str | None = None, measure: bool = True,
              executors: list[str] | None = None, workers: list[int] | None = None) -> Plan:
    """The plan of `spec` (`data`: its verified datasets by name); with `measure`, calibrate what is not cached (else leave it out, as `study run` does)."""
    every, start = spec_trials(spec)
    plan = Plan(len(every), sum(t.config.epochs for t in every), len(start), sum(t.config.epochs for t in start))
    memo: dict = {}
    for executor in executors or executors_for(spec):
        for count in workers or worker_counts():
            configs = [t.config.replace(executor=executor) for t in
                       {cost_class(t.config): t for t in every}.values()]
            entries = {entry_key(c, executor, count): cached(c, executor, count) for c in configs}
            if None in entries.values():
                if not measure:
                    plan.missing.append(f"{executor} x{count}")
                    continue
                try:
                    entries = calibrate(configs, executor, count, _group_width(every), data_dir)
                except RuntimeError as exc:
                    plan.missing.append(f"{executor} x{count} ({exc})")
                    continue
            retarget = [Trial(t.config.replace(executor=executor), t.levels) for t in every]
            first = [Trial(t.config.replace(executor=executor), t.levels) for t in start]
            some = next(iter(entries.values()))
            launch = _launch(configs, entries, executor, count, data_dir, measure)
            plan.predictions.append(Prediction(
                executor, count, predict_seconds(retarget, entries, executor, count, data, memo, launch),
                predict_seconds(first, entries, executor, count, data, memo, launch),
                f"{some['date'][:10]}, {some['cpu']} ({some['cores']} cores, load {some['load']})"))
    return plan


def detectable_differences(spec: StudySpec, tidy, rule, margin: float) -> list[tuple[str, float, float, int | None]]:
    """Per main effect, from an earlier run's complete seeds: the per-seed SD of its contrast, the difference it
    detects with 80% power at the spec's seeds, and the seeds needed to detect `margin` (None: over 100)."""
    from study.analysis.adaptive_targets import config_labels, factor_levels_of, grid_of, main_effects
    from study.analysis.sequential import PRIMARY
    from study.analysis.stats.intervals import detectable_difference

    levels = factor_levels_of(spec)
    grid = grid_of(tidy, spec, rule, len(spec.seeds))
    values = grid.values[PRIMARY]
    complete = [s for s in range(values.shape[1]) if not np.isnan(values[:, s]).any()] \
        if values.size else []
    out = []
    if len(complete) < 2:
        return out
    seeds = spec.adaptive.max_seeds if spec.adaptive is not None else len(spec.seeds)
    for contrast in main_effects(config_labels(levels), levels):
        x = sum(w * values[c, complete] for c, w in contrast.weights)
        sd = float(x.std(ddof=1))
        needed = next((n for n in range(2, 101) if detectable_difference(sd, n) <= margin), None)
        out.append((contrast.name, sd, detectable_difference(sd, seeds), needed))
    return out


def describe(spec: StudySpec, plan: Plan, workers: int | None = None) -> list[str]:
    """The plan as lines (the first one is what `study run` prints first, for its own worker count)."""
    size = (f"{plan.trials} trials, {plan.trial_epochs} trial-epochs" if plan.trials == plan.min_trials else
            f"{plan.min_trials}-{plan.trials} trials, {plan.min_trial_epochs}-{plan.trial_epochs} trial-epochs "
            f"(adaptive: start seeds to max_seeds)")
    own = [p for p in plan.predictions if p.executor == spec.base.executor and workers in (None, p.workers)]
    head = f"plan: {spec.name}: {size}"
    if own:
        best = min(own, key=lambda p: p.seconds)
        head += f"; predicted {_span(best)} with {best.workers} worker(s) ({best.executor} executor)"
    else:
        head += (f"; no calibration of this machine for {spec.base.executor} x{workers or 1} yet "
                 f"(`python -m study plan {spec.source}` measures it)")
    lines = [head]
    for p in plan.predictions:
        lines.append(f"  {p.executor:>6} executor, {p.workers} worker(s): {_span(p)}   (calibrated {p.calibrated})")
    if plan.missing:
        lines.append(f"  not calibrated: {', '.join(plan.missing)}")
    if plan.detectable:
        seeds = spec.adaptive.max_seeds if spec.adaptive is not None else len(spec.seeds)
        lines.append(f"from the earlier run of {spec.name}: the difference each main effect detects (80% power, "
                     f"alpha 0.05) at {seeds} seeds, and the seeds a margin of {_margin(spec):g} pp needs:")
        for name, sd, mde, needed in plan.detectable:
            lines.append(f"  {name}: {100 * mde:.2f} pp (per-seed SD {100 * sd:.2f} pp); "
                         f"{needed if needed is not None else 'over 100'} seeds for {_margin(spec):g} pp")
    return lines


def _margin(spec: StudySpec) -> float:
    return spec.adaptive.margin_pp if spec.adaptive is not None else 0.5


def _span(p: Prediction) -> str:
    if abs(p.seconds - p.low_seconds) < 1:
        return format_duration(p.seconds)
    return f"{format_duration(p.low_seconds)}-{format_duration(p.seconds)}"


def first_line(spec: StudySpec, data: dict, data_dir: str | None, workers: int) -> str:
    """`study run`'s first line: the plan from the cached calibration only (measuring is `study plan`'s job)."""
    try:
        plan = make_plan(spec, data, data_dir, measure=False, executors=[spec.base.executor], workers=[workers])
    except Exception as exc:  # noqa: BLE001 - a prediction must never stop a run; the data check below explains
        every, _ = spec_trials(spec)
        return f"plan: {spec.name}: {len(every)} trials (no prediction: {type(exc).__name__})"
    return describe(spec, plan, workers)[0]
