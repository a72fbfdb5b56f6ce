"""The tuning report's sections: history, importances, the searched map, pruning, base vs tuned."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from study.analysis.runs import trials_frame
from study.analysis.stats.blocks import t_test_p
from study.analysis.stats.intervals import t_interval, tost
from study.core.text import format_duration
from study.report import format as formatting
from study.report.figures.pyplot import plt, save
from study.report.format import markdown_table as _markdown
from study.report.section import ResultsSection, TuneContext
from study.spec.tune_spec import TuneSpec
from study.tuning.optuna_setup import arm_configs

CONFIDENCE = 0.95
EQUIVALENCE_MARGIN = 0.005  # 0.5 pp of test accuracy: the smallest difference between two configs worth acting on


class HistorySection(ResultsSection):
    """Every trial's value by trial number, the best so far, and the per-epoch curves the pruner saw."""

    def body(self, ctx: TuneContext) -> str:
        spec, trials, curves, out = ctx.spec, ctx.trials, ctx.curves, ctx.out
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
        save(fig, out / "figures" / "history.png")

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
        save(fig, out / "figures" / "intermediate.png")
        return ("## Optimization history\n\n![history](figures/history.png)\n\n"
                "Every trial's per-epoch validation value as reported to the pruner; red curves stop where the pruner "
                "stopped them.\n\n![intermediate](figures/intermediate.png)\n")


class ImportancesSection(ResultsSection):
    """Which searched field moves the objective: fANOVA and PED-ANOVA side by side."""

    def body(self, ctx: TuneContext) -> str:
        spec, search, out = ctx.spec, ctx.search, ctx.out
        if len(spec.space) < 2:
            return ("## Parameter importances\n\nOnly one field is searched, so its importance is 1 by definition; "
                    "see the parameter map below.\n")
        found = search.importances()
        results, problems, complete, finished, step = (found.results, found.problems, found.complete, found.finished,
                                                       found.common_step)
        text = ("## Parameter importances\n\nShare of the objective's variance explained by each searched field, from "
                "Optuna's `FanovaImportanceEvaluator` (fANOVA on a random forest, seed 0) and, beside it, "
                "`PedAnovaImportanceEvaluator` (PED-ANOVA, Optuna's default evaluator, which asks which fields set the "
                "top 10% of trials apart). With few trials both are rough.\n\n"
                f"**Pruning caveat:** Optuna fits them on the completed trials only, here {complete} of "
                f"{finished}: the pruner removed the trials that were behind, so those importances describe the "
                "survivors, not the space that was searched.")
        if step is not None:
            text += (f" The `all trials at epoch {step}` columns fit the same evaluators on every finished trial, "
                     f"completed or pruned, with its value after epoch {step} (the last epoch every trial reached, as "
                     "reported to the pruner): the whole search, at an earlier point of training.")
        text += "\n\n"
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
            save(fig, out / "figures" / "importances.png")
            text += _markdown(table) + "\n\n![importances](figures/importances.png)\n"
        if problems:
            text += "\nNot computed: " + "; ".join(problems) + "\n"
        return text


class ParamMapSection(ResultsSection):
    """Dropout x learning rate (or the first two searched fields): where the good trials are."""

    def body(self, ctx: TuneContext) -> str:
        spec, trials, out = ctx.spec, ctx.trials, ctx.out
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
            best = ordered_trials(spec, trials).iloc[0]
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
        save(fig, out / "figures" / "param_map.png")
        return (f"## {x_name}" + (f" x {y_name}" if y_name else "") + "\n\nEvery trial at its searched values "
                "(a scatter, not an interpolated contour: with few trials a contour invents the space between "
                "them).\n\n![param map](figures/param_map.png)\n")


class PruningSection(ResultsSection):
    """What the pruner stopped and the trial-epochs that saved."""

    def body(self, ctx: TuneContext) -> str:
        spec, trials = ctx.spec, ctx.trials
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


class RetrainSection(ResultsSection):
    """Base vs tuned, retrained on fresh seeds: the honest measure of what tuning bought."""

    def body(self, ctx: TuneContext) -> str:
        spec, search, out = ctx.spec, ctx.search, ctx.out
        arms = arm_configs(spec, search)
        head = "## Tuned vs untuned base, retrained\n\n"
        if arms is None:
            return head + "No completed trial yet.\n"
        frame = trials_frame(spec.name)
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
            low, high = t_interval(diff, CONFIDENCE)  # paired: the interval of the per-seed differences
            equivalence = tost(diff, EQUIVALENCE_MARGIN)
            intervals.append({"metric": what, "base mean": complete[f"base {short}"].mean(),
                              "base std": complete[f"base {short}"].std(),
                              "tuned mean": complete[f"tuned {short}"].mean(),
                              "tuned std": complete[f"tuned {short}"].std(), "difference (tuned - base)": diff.mean(),
                              f"{CONFIDENCE:.0%} CI low": low, f"{CONFIDENCE:.0%} CI high": high,
                              "p (t test)": t_test_p(diff.to_numpy()),
                              "TOST p": equivalence["p_tost"], "90% CI low": equivalence["low"],
                              "90% CI high": equivalence["high"], "n seeds": int(diff.notna().sum())})
        summary = pd.DataFrame(intervals)
        summary.to_csv(out / "tables" / "retrain_summary.csv", index=False)
        _retrain_figure(complete, out)
        tuned = ", ".join(f"`{n}` = {value_text(getattr(arms['tuned'], n))}" for n in spec.space)
        base = ", ".join(f"`{n}` = {value_text(getattr(arms['base'], n))}" for n in spec.space)
        verdict = _verdict(summary.iloc[0], same)
        return (head + f"The best trial's config (tuned: {tuned}) and the untuned base ({base}) were each trained "
                f"again with seeds {list(spec.retrain_seeds)} (the search used seed {spec.base.seed}), with "
                "everything else equal. A seed fixes initial weights and shuffling for both, so the comparison is "
                f"paired by seed: the interval is the {CONFIDENCE:.0%} Student-t interval of the mean per-seed "
                f"difference (n - 1 = {len(complete) - 1} degrees of freedom), with its t test. A difference that "
                "is not significant is not a match: equivalence is tested separately, by two one-sided t tests (TOST, "
                f"Schuirmann 1987) against a margin of ±{100 * EQUIVALENCE_MARGIN:.1f} pp, the smallest difference in "
                "accuracy we would act on; the two configs are equivalent when the 90% interval lies inside the margin "
                "(TOST p < 0.05). Test accuracy is the honest measure: the search picked the tuned config on the "
                "validation set, so its validation advantage is biased upwards.\n\n"
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
    margin = f"±{100 * EQUIVALENCE_MARGIN:.1f} pp"
    tost_text = (f"TOST p = {formatting.p_value(row['TOST p'])}, 90% CI "
                 f"{formatting.interval(row['90% CI low'], row['90% CI high'], metric, signed=True)} pp")
    if row["TOST p"] < 0.05:
        return (f"The tuned config is equivalent to the base on test accuracy within {margin}: {interval}; "
                f"{tost_text}, inside the margin.")
    return (f"No difference detected on test accuracy ({interval}, the interval includes 0), but equivalence "
            f"within {margin} is not shown either ({tost_text}, reaching past the margin): these seeds cannot tell "
            "whether tuning helped.")


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
    save(fig, out / "figures" / "retrain.png")


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


def value_text(value) -> str:
    return f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)


def ordered_trials(spec: TuneSpec, trials: pd.DataFrame) -> pd.DataFrame:
    complete = trials[trials["state"] == "COMPLETE"]
    return complete.sort_values("value", ascending=spec.direction == "minimize", kind="stable")
