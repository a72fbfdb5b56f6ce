"""Write reports/<tune study>/README.md + figures/*.png + tables/*.csv.

Trials, their states and intermediate values come from the Optuna storage (the
source of truth for the search); the retrained base/tuned runs come from MLflow
through study.analysis, like every ablation report.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from matplotlib.ticker import MaxNLocator

from study import analysis, formatting, stats, tracking
from study.engine import redact
from study.plots import plt
from study.report import (  # the ablation report's helpers, shared on purpose
    _markdown,
    _parent_runs,
)
from study.runner import format_duration, spec_hash
from study.tune_spec import TuneSpec
from study.tuner import EPOCHS_ATTR, RUN_ID_ATTR, arm_configs

TOP = 10
CONFIDENCE = 0.95


def write_tune_report(spec: TuneSpec, storage, storage_url: str, tracking_uri: str | None = None,
                      out_root: Path = Path("reports")) -> Path:
    tracking.configure(tracking_uri)
    out = out_root / spec.name
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        study = None
    trials = trials_table(study, spec) if study is not None else pd.DataFrame()
    sections = [_header(spec, trials, storage_url)]
    if trials.empty or not (trials["state"] == "COMPLETE").any():
        sections.append(f"No completed trials yet: run `python -m study tune {spec.source}` first.\n")
    else:
        trials.to_csv(out / "tables" / "trials.csv", index=False)
        curves = intermediate_values(study)
        curves.to_csv(out / "tables" / "intermediate_values.csv", index=False)
        sections += [
            _best(spec, trials),
            _top(spec, trials, out),
            _history(spec, trials, curves, out),
            _importances(spec, study, out),
            _param_map(spec, trials, out),
            _pruning(spec, trials),
            _retrain(spec, study, out),
        ]
    sections.append(_spec_section(spec))
    readme = out / "README.md"
    readme.write_text("\n".join(s for s in sections if s))
    return readme


def trials_table(study: optuna.Study, spec: TuneSpec) -> pd.DataFrame:
    """One row per Optuna trial: state, value, params, epochs run/planned, duration, MLflow run id."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        planned = spec.config_for(t.params).epochs if set(spec.space) <= set(t.params) else spec.base.epochs
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            **{name: t.params.get(name) for name in spec.space},
            "epochs_run": int(t.user_attrs.get(EPOCHS_ATTR, len(t.intermediate_values))),
            "epochs_planned": planned,
            "last_reported": t.intermediate_values[t.last_step] if t.last_step is not None else math.nan,
            "duration_s": t.duration.total_seconds() if t.duration else math.nan,
            "test_accuracy": t.user_attrs.get("test_accuracy", math.nan),
            "enqueued": t.user_attrs.get("enqueued", ""),
            "mlflow_run_id": t.user_attrs.get(RUN_ID_ATTR, ""),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- sections


def _header(spec: TuneSpec, trials: pd.DataFrame, storage_url: str) -> str:
    parents = _parent_runs(spec.name)
    tags = parents[0].data.tags if parents else {}
    counts = trials["state"].value_counts().to_dict() if not trials.empty else {}
    base = ", ".join(f"{k}={v}" for k, v in spec.base.as_dict().items() if k not in spec.space and k != "seed")
    space = pd.DataFrame([{"field": n, "low": p.low, "high": p.high, "scale": "log" if p.log else "linear",
                           "step": p.step if p.step is not None else "", "base value": getattr(spec.base, n)}
                          for n, p in spec.space.items()])
    options = lambda c: ", ".join(f"{k}={v}" for k, v in c.options.items())  # noqa: E731
    lines = [
        f"# Tuning study `{spec.name}`",
        "",
        spec.description.strip(),
        "",
        "## Summary",
        "",
        f"- Spec: `{spec.source}` (hash `{spec_hash(spec)}`). Optuna study `{spec.name}` in "
        f"`{redact(storage_url)}`; MLflow experiment `{spec.name}`.",
        "- Base config" + (f" (best config of the ablation study `{spec.base_from}` by mean val accuracy over seeds, "
                            "then this spec's own settings)" if spec.base_from else "") + f": `{base}`.",
        f"- Objective: {spec.direction} `{spec.metric}` of the kept model (the epoch with the lowest val_loss), "
        f"validation `{spec.base.validation}`, tuning seed {spec.base.seed}.",
        f"- Sampler `{spec.sampler.name}` ({options(spec.sampler)}); pruner `{spec.pruner.name}`"
        + (f" ({options(spec.pruner)})" if spec.pruner.options else "")
        + "; pruning steps are epochs completed.",
        f"- Trials: {int(counts.get('COMPLETE', 0) + counts.get('PRUNED', 0))} of n_trials={spec.n_trials} counted "
        "(complete + pruned). Optuna states: "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none") + ".",
    ]
    if not trials.empty:
        lines.append(f"- Tuning time: {format_duration(trials['duration_s'].sum(skipna=True))} summed over trials.")
    if tags:
        versions = ", ".join(f"{k.removeprefix('version.')} {v}" for k, v in sorted(tags.items())
                             if k.startswith("version."))
        lines.append(f"- Data: {tags.get('data_source', 'n/a')} (sha256 of every array verified).")
        lines.append(f"- Versions: {versions}.")
        lines.append(f"- Machine: {tags.get('machine.cpu', '?')}, {tags.get('machine.cores', '?')} cores, "
                     f"{tags.get('machine.platform', '?')}.")
        lines.append(f"- Command: `{tags.get('command', '?')}`.")
    lines += ["", "Search space:", "", space.to_markdown(index=False)]
    return "\n".join(lines) + "\n"


def _ordered(spec: TuneSpec, trials: pd.DataFrame) -> pd.DataFrame:
    complete = trials[trials["state"] == "COMPLETE"]
    return complete.sort_values("value", ascending=spec.direction == "minimize", kind="stable")


def _best(spec: TuneSpec, trials: pd.DataFrame) -> str:
    best = _ordered(spec, trials).iloc[0]
    params = ", ".join(f"`{n}` = {_fmt(best[n])}" for n in spec.space)
    base = ", ".join(f"`{n}` = {_fmt(v)}" for n, v in spec.base_params().items())
    test = f"; its test accuracy {best['test_accuracy']:.4f}" if not pd.isna(best["test_accuracy"]) else ""
    return (f"## Best trial\n\nTrial #{int(best['number'])}: {spec.metric} **{best['value']:.4f}** with {params} "
            f"(untuned base: {base}){test}. MLflow run `{best['mlflow_run_id']}`. This value is the best of "
            f"{int((trials['state'] == 'COMPLETE').sum())} completed trials on one seed and one validation set, so it "
            "is optimistic; the retraining below measures the tuned config honestly.\n")


def _top(spec: TuneSpec, trials: pd.DataFrame, out: Path) -> str:
    top = _ordered(spec, trials).head(TOP)
    columns = ["number", "value", *spec.space, "epochs_run", "duration_s", "test_accuracy", "enqueued",
               "mlflow_run_id"]
    top = top[columns].rename(columns={"value": spec.metric})
    top.to_csv(out / "tables" / "top_trials.csv", index=False)
    return (f"## Top {min(TOP, len(top))} trials\n\nCompleted trials by {spec.metric} (all trials with states, "
            "epochs and run ids in `tables/trials.csv`).\n\n" + _markdown(top) + "\n")


def _history(spec: TuneSpec, trials: pd.DataFrame, curves: pd.DataFrame, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    complete = trials[trials["state"] == "COMPLETE"].sort_values("number")
    pruned = trials[trials["state"] == "PRUNED"]
    ax.plot(complete["number"], complete["value"], "o", label="complete")
    best = complete["value"].cummax() if spec.direction == "maximize" else complete["value"].cummin()
    ax.step(complete["number"], best, where="post", color="C1", label="best so far")
    if not pruned.empty:
        ax.plot(pruned["number"], pruned["last_reported"], "x", color="grey",
                label="pruned (value at the epoch it stopped)")
    ax.set_xlabel("trial number")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(spec.metric)
    _zoom(ax, pd.concat([complete["value"], pruned["last_reported"]]), spec.direction)
    ax.set_title("Optimization history", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, out / "figures" / "history.png")

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for (number, state), curve in curves.groupby(["number", "state"]):
        ax.plot(curve["step"], curve["value"], marker=".", alpha=0.6,
                color={"COMPLETE": "C0", "PRUNED": "C3"}.get(state, "grey"))
    ax.plot([], [], color="C0", label="complete")
    ax.plot([], [], color="C3", label="pruned")
    ax.set_xlabel("epochs completed (pruning step)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{spec.metric} of the epoch")
    _zoom(ax, curves["value"], spec.direction)
    ax.set_title("Per-epoch values reported to the pruner", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, out / "figures" / "intermediate.png")
    return ("## Optimization history\n\n![history](figures/history.png)\n\n"
            "Every trial's per-epoch validation value as reported to the pruner; red curves stop where the pruner "
            "stopped them.\n\n![intermediate](figures/intermediate.png)\n")


def intermediate_values(study: optuna.Study) -> pd.DataFrame:
    """Long frame (number, state, step, value) of what each trial reported to the pruner."""
    rows = [(t.number, t.state.name, step, value) for t in study.get_trials(deepcopy=False)
            for step, value in sorted(t.intermediate_values.items())]
    return pd.DataFrame(rows, columns=["number", "state", "step", "value"])


def _importances(spec: TuneSpec, study: optuna.Study, out: Path) -> str:
    if len(spec.space) < 2:
        return ("## Parameter importances\n\nOnly one field is searched, so its importance is 1 by definition; "
                "see the parameter map below.\n")
    evaluators = {
        "fANOVA": optuna.importance.FanovaImportanceEvaluator(seed=0),
        "PED-ANOVA": optuna.importance.PedAnovaImportanceEvaluator(),
    }
    results, problems = {}, []
    for label, evaluator in evaluators.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results[label] = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except Exception as exc:  # noqa: BLE001 - too few or too uniform trials; say so instead of failing
            problems.append(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    text = ("## Parameter importances\n\nShare of the objective's variance over the completed trials explained by "
            "each searched field, from Optuna's `FanovaImportanceEvaluator` (fANOVA on a random forest fitted to "
            "the completed trials, seed 0) and, beside it, `PedAnovaImportanceEvaluator` (PED-ANOVA, Optuna's "
            "default evaluator, which asks which fields set the top 10% of trials apart). With few trials both are "
            "rough.\n\n")
    if results:
        table = pd.DataFrame(results).reindex(list(spec.space)).reset_index(names="field")
        table.to_csv(out / "tables" / "importances.csv", index=False)
        fig, ax = plt.subplots(figsize=(5.6, 0.6 + 0.5 * len(spec.space)))
        width = 0.8 / len(results)
        y = np.arange(len(table))
        for i, label in enumerate(results):
            ax.barh(y + i * width, table[label].fillna(0), height=width, label=label)
        ax.set_yticks(y + width * (len(results) - 1) / 2, table["field"])
        ax.set_xlabel("importance (normalised to sum 1)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="x")
        _save(fig, out / "figures" / "importances.png")
        text += _markdown(table) + "\n\n![importances](figures/importances.png)\n"
    if problems:
        text += "\nNot computed: " + "; ".join(problems) + "\n"
    return text


def _param_map(spec: TuneSpec, trials: pd.DataFrame, out: Path) -> str:
    """Dropout x learning rate (or the first two searched fields): where the good trials are."""
    names = list(spec.space)
    x_name = "learning_rate" if "learning_rate" in names else names[0]
    rest = [n for n in names if n != x_name]
    y_name = "dropout" if "dropout" in rest else (rest[0] if rest else None)
    complete = trials[trials["state"] == "COMPLETE"]
    pruned = trials[trials["state"] == "PRUNED"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if y_name is None:
        ax.plot(complete[x_name], complete["value"], "o", label="complete")
        ax.set_ylabel(spec.metric)
    else:
        points = ax.scatter(complete[x_name], complete[y_name], c=complete["value"], cmap="viridis", s=40,
                            edgecolors="k", linewidths=0.3, label="complete (colour = value)")
        fig.colorbar(points, ax=ax, label=spec.metric)
        if not pruned.empty:
            ax.scatter(pruned[x_name], pruned[y_name], marker="x", color="grey", label="pruned")
        best = _ordered(spec, trials).iloc[0]
        ax.scatter([best[x_name]], [best[y_name]], marker="*", s=260, color="C3", edgecolors="k", label="best")
        base = spec.base_params()
        ax.scatter([base[x_name]], [base[y_name]], marker="P", s=140, color="white", edgecolors="k",
                   label="untuned base")
        ax.set_ylabel(y_name)
    ax.set_xlabel(x_name)
    if spec.space[x_name].log:
        ax.set_xscale("log")
    ax.set_title(f"{spec.metric} over {x_name}" + (f" x {y_name}" if y_name else ""), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    _save(fig, out / "figures" / "param_map.png")
    return (f"## {x_name}" + (f" x {y_name}" if y_name else "") + "\n\nEvery trial at its searched values "
            "(a scatter, not an interpolated contour: with few trials a contour invents the space between them).\n\n"
            "![param map](figures/param_map.png)\n")


def _pruning(spec: TuneSpec, trials: pd.DataFrame) -> str:
    finished = trials[trials["state"].isin(["COMPLETE", "PRUNED", "FAIL"])]
    pruned = trials[trials["state"] == "PRUNED"]
    if spec.pruner.name == "none":
        return "## Pruning\n\nNo pruner: every trial ran all its epochs.\n"
    planned = int(finished["epochs_planned"].sum())
    saved = int((pruned["epochs_planned"] - pruned["epochs_run"]).clip(lower=0).sum())
    per_epoch, overhead = epoch_cost(finished)
    stopped = ", ".join(str(int(n)) for n in pruned["epochs_run"]) or "-"
    text = ("## Pruning\n\n"
            f"{len(pruned)} of {len(finished)} finished trials were pruned by the `{spec.pruner.name}` pruner "
            f"(epochs each had run when stopped: {stopped}). They left {saved} of {planned} planned trial-epochs "
            f"unrun ({(saved / planned if planned else 0):.0%} of the search's epochs)")
    if math.isnan(per_epoch):
        return text + ".\n"
    return text + (f", about {format_duration(saved * per_epoch)} of training at {per_epoch:.2f} s per epoch. "
                   f"That rate and the fixed cost of {overhead:.1f} s per trial (model build, graph tracing, "
                   "logging), which pruning does not save, are a least-squares fit of trial duration on epochs "
                   "run.\n")


def epoch_cost(trials: pd.DataFrame) -> tuple[float, float]:
    """(seconds per epoch, seconds per trial) from duration = overhead + epochs * per_epoch;
    NaN when every trial ran the same number of epochs (the two cannot be told apart)."""
    data = trials.dropna(subset=["duration_s"])
    data = data[data["epochs_run"] > 0]
    if data["epochs_run"].nunique() < 2:
        return math.nan, math.nan
    slope, intercept = np.polyfit(data["epochs_run"].astype(float), data["duration_s"].astype(float), 1)
    return float(slope), float(intercept)


def _retrain(spec: TuneSpec, study: optuna.Study, out: Path) -> str:
    arms = arm_configs(spec, study)
    head = "## Tuned vs untuned base, retrained\n\n"
    if arms is None:
        return head + "No completed trial yet.\n"
    frame = analysis.trials_frame(spec.name)
    rows = []
    for seed in spec.retrain_seeds:
        row: dict = {"seed": seed}
        for arm, config in arms.items():
            match = frame[frame["trial_key"] == config.replace(seed=seed).key()] if not frame.empty else frame
            for metric, short in (("final_val_accuracy", "val"), ("test_accuracy", "test")):
                row[f"{arm} {short}"] = float(match[metric].iloc[0]) if len(match) else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "tables" / "retrain.csv", index=False)
    same = arms["base"] == arms["tuned"]
    complete = table.dropna()
    if complete.empty:
        return head + (f"Not retrained yet: run `python -m study tune {spec.source}` (without `--no-retrain`).\n")
    intervals = []
    for short, what in (("test", "test accuracy"), ("val", "validation accuracy")):
        diff = complete[f"tuned {short}"] - complete[f"base {short}"]
        low, high = stats.t_interval(diff, CONFIDENCE)  # paired: the interval of the per-seed differences
        intervals.append({"metric": what, "base mean": complete[f"base {short}"].mean(),
                          "base std": complete[f"base {short}"].std(), "tuned mean": complete[f"tuned {short}"].mean(),
                          "tuned std": complete[f"tuned {short}"].std(), "difference (tuned - base)": diff.mean(),
                          f"{CONFIDENCE:.0%} CI low": low, f"{CONFIDENCE:.0%} CI high": high,
                          "n seeds": int(diff.notna().sum())})
    summary = pd.DataFrame(intervals)
    summary.to_csv(out / "tables" / "retrain_summary.csv", index=False)
    _retrain_figure(complete, out)
    tuned = ", ".join(f"`{n}` = {_fmt(getattr(arms['tuned'], n))}" for n in spec.space)
    base = ", ".join(f"`{n}` = {_fmt(getattr(arms['base'], n))}" for n in spec.space)
    verdict = _verdict(summary.iloc[0], same)
    return (head + f"The best trial's config (tuned: {tuned}) and the untuned base ({base}) were each trained again "
            f"with seeds {list(spec.retrain_seeds)} (the search used seed {spec.base.seed}), with everything else "
            "equal. A seed fixes initial weights and shuffling for both, so the comparison is paired by seed: the "
            f"interval is the {CONFIDENCE:.0%} Student-t interval of the mean per-seed difference "
            f"(n - 1 = {len(complete) - 1} degrees of freedom). Test accuracy is the honest measure: the search "
            "picked the tuned config on the validation set, so its validation advantage is biased upwards.\n\n"
            + _markdown(summary) + f"\n\n**{verdict}**\n\nPer seed:\n\n" + _markdown(table)
            + "\n\n![retrain](figures/retrain.png)\n")


def _verdict(row: pd.Series, same: bool) -> str:
    if same:
        return "The best trial is the untuned base itself: tuning found nothing better."
    metric = "test_accuracy"
    low, high = row[f"{CONFIDENCE:.0%} CI low"], row[f"{CONFIDENCE:.0%} CI high"]
    diff = row["difference (tuned - base)"]
    interval = (f"{formatting.delta(diff, metric)}, {CONFIDENCE:.0%} CI "
                f"{formatting.interval(low, high, metric, signed=True)} pp")
    if math.isnan(low):
        return f"Test accuracy difference {formatting.delta(diff, metric)} (no interval with fewer than 2 seeds)."
    if low > 0:
        return f"The tuned config beats the base on test accuracy: {interval}."
    if high < 0:
        return f"The tuned config is worse than the base on test accuracy: {interval}."
    return (f"The tuned config matches the base on test accuracy within the interval: {interval} "
            "(the interval includes 0).")


def _retrain_figure(table: pd.DataFrame, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.2))
    for ax, short in zip(axes, ("test", "val")):
        for _, row in table.iterrows():
            ax.plot([0, 1], [row[f"base {short}"], row[f"tuned {short}"]], marker="o", color="C0", alpha=0.7)
            ax.annotate(f"seed {int(row['seed'])}", (1, row[f"tuned {short}"]), fontsize=7,
                        xytext=(4, 0), textcoords="offset points")
        ax.set_xticks([0, 1], ["base", "tuned"])
        ax.set_xlim(-0.3, 1.5)
        ax.set_ylabel(f"{short} accuracy")
        ax.grid(alpha=0.3)
    fig.suptitle("Base vs tuned, paired by seed", fontsize=9)
    _save(fig, out / "figures" / "retrain.png")


def _spec_section(spec: TuneSpec) -> str:
    import yaml

    text = Path(spec.source).read_text().strip() if Path(spec.source).is_file() else yaml.safe_dump(spec.raw)
    return "## Spec\n\n```yaml\n" + text + "\n```\n"


# --------------------------------------------------------------------------- helpers


def _zoom(ax, values: pd.Series, direction: str) -> None:
    """Keep the interesting end in view: diverged or barely trained trials would squash the rest."""
    values = pd.Series(values).dropna()
    if len(values) < 4:
        return
    if direction == "maximize":
        low = values.quantile(0.25)
        spread = values.max() - low
        ax.set_ylim(max(values.min(), low - 2 * spread), values.max() + 0.1 * spread + 1e-9)
    else:
        high = values.quantile(0.75)
        spread = high - values.min()
        ax.set_ylim(values.min() - 0.1 * spread - 1e-9, min(values.max(), high + 2 * spread))


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)
