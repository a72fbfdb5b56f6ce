"""The sections that show a study's results: trials (divergence, failures, missing), leaderboard, path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.analysis.leaderboard import CONFIRMED
from study.analysis.stats.divergence import CHANCE_ACCURACY
from study.analysis.stats.intervals import level_column
from study.analysis.study_analysis import PRIMARY, Analysis
from study.report import format as fmt
from study.report.figures import study_figures as figures
from study.report.format import VAL_ACCURACY, Outcome
from study.report.latex import write_latex
from study.report.section import ReportContext

LEADERBOARD_ROWS = 15
FAILING_ROWS = 12


def divergence_section(result: Analysis, all_runs: pd.DataFrame, expected: list, out: Path) -> str:
    """Counts by status, every diverged trial, the trials that did not learn, and missing trials."""
    frame = result.frame
    everything = pd.concat([frame, result.confirm_frame], ignore_index=True)
    counts = all_runs["status"].value_counts().to_dict() if not all_runs.empty else {}
    done = set(everything["trial_key"]) if not everything.empty else set()
    missing = [t for t in expected if t.key not in done]
    confirm = f", {len(result.confirm_frame)} of them on the confirm seeds" if len(result.confirm_frame) else ""
    lines = ["## Trials, failures and missing results\n",
             f"Finished trials: {len(everything)} of {len(expected)} expected{confirm} "
             f"({int(everything['status'].eq('completed').sum()) if len(everything) else 0} completed, "
             f"{int(everything['status'].eq('diverged').sum()) if len(everything) else 0} diverged). MLflow trial "
             "runs by status, reruns included: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                                                    or "none") + "."]
    diverged = frame[frame["status"].eq("diverged")] if len(frame) else frame
    if len(diverged):
        shown = diverged[["seed"] + [level_column(f) for f in result.factors] + ["epochs_run", PRIMARY,
                                                                                  "imputed"]].rename(
            columns={level_column(f): f for f in result.factors})
        shown["epochs_run"] = shown["epochs_run"].astype(int)
        shown[PRIMARY] = [fmt.value(v, PRIMARY) + (" (chance: no finite epoch)" if imp else "")
                          for v, imp in zip(shown[PRIMARY], shown.pop("imputed"))]
        diverged.to_csv(out / "tables" / "diverged_trials.csv", index=False)
        lines.append(f"\n{len(diverged)} trial(s) diverged (the loss became NaN/inf and training stopped). They stay "
                     "in every analysis: with the kept model's metrics when they had a finite epoch, and with "
                     f"chance accuracy ({fmt.value(CHANCE_ACCURACY, PRIMARY)}) when they had none; their val "
                     "loss is then missing and such pairs are left out of the val-loss effects only.\n")
        lines.append(fmt.markdown(shown.head(40), parse_numbers=False)
                     + ("\n\n(all in `tables/diverged_trials.csv`)" if len(shown) > 40 else ""))
    else:
        lines.append("\nNo trial diverged.")
    lines.append(_failures(result, out))
    if missing:
        table = pd.DataFrame([{"seed": t.config.seed, **t.levels, "trial_key": t.key} for t in missing])
        table.to_csv(out / "tables" / "missing_trials.csv", index=False)
        lines.append(f"\n{len(missing)} expected trial(s) have no finished result yet (not run, failed or interrupted; "
                     "listed in `tables/missing_trials.csv`): comparisons that need them count them as `unpaired`.")
    return "\n".join(lines) + "\n"


def _failures(result: Analysis, out: Path) -> str:
    frame, rule = result.frame, result.rule
    failed, partial = int(frame["failed"].sum()), int(frame["partial"].sum())
    text = (f"\n**Three outcomes: {failed} of {len(frame)} trials fail, {partial} partly learn, "
            f"{len(frame) - failed - partial} learn.** A trial *fails* at val accuracy at most "
            f"{fmt.value(rule.threshold, PRIMARY)} (the validation set's majority-class rate "
            f"{fmt.value(rule.majority_rate, PRIMARY)}, from {rule.source}, plus {fmt.points(rule.margin)}) or with "
            "a non-finite loss: it predicts about one class for every image. It *learns* at "
            f"{fmt.value(rule.learn_threshold, PRIMARY)} or more: {fmt.share(rule.learn_share)} of the way from the "
            f"majority-class rate to the best config's mean ({fmt.value(rule.best, PRIMARY)}), the accuracy this "
            "budget allows. In between it *partly learns* (on MNIST a 40% trial is neither a failure nor a learner). "
            "Effects among learners use learners only; the Effects section shows how they move with that threshold.")
    rule_table = pd.DataFrame([{"majority-class rate": fmt.value(rule.majority_rate, PRIMARY),
                                "fails at or below": fmt.value(rule.threshold, PRIMARY),
                                "learns at or above": fmt.value(rule.learn_threshold, PRIMARY),
                                "fail": f"{failed} of {len(frame)}", "partly learn": f"{partial} of {len(frame)}"}])
    text += "\n\n" + fmt.markdown(rule_table, parse_numbers=False) + "\n"
    pd.DataFrame([{"majority_rate": rule.majority_rate, "margin": rule.margin, "fails_at_or_below": rule.threshold,
                   "learn_share": rule.learn_share, "best_config_mean": rule.best,
                   "learns_at_or_above": rule.learn_threshold, "validation_size": rule.validation_size,
                   "source": rule.source}]).to_csv(out / "tables" / "outcome_rule.csv", index=False)
    if not failed and not partial:
        return text
    result.failure_levels.to_csv(out / "tables" / "failures_by_level.csv", index=False)
    result.failing.to_csv(out / "tables" / "failing_configs.csv", index=False)
    configs = result.failing.head(FAILING_ROWS).copy()
    seeds = configs.pop("seeds")
    configs["failed"] = [f"{int(f)} of {int(n)}" for f, n in zip(configs["failed"], seeds)]
    configs["partial"] = [f"{int(p)} of {int(n)}" for p, n in zip(configs["partial"], seeds)]
    configs["val_accuracy"] = configs["val_accuracy"].map(lambda v: fmt.value(v, PRIMARY))
    more = (f" (the first {FAILING_ROWS}; all {len(result.failing)} in `tables/failing_configs.csv`)"
            if len(result.failing) > FAILING_ROWS else "")
    return (text + "\nPer level: `tables/failures_by_level.csv` (rates with Wilson intervals; trials of a level are "
            "not independent, so read the failure-rate effects for inference)."
            + f"\n\nConfigs with a trial that failed or only partly learned{more}:\n\n"
            + fmt.markdown(configs.rename(columns={"failed": "seeds that fail", "partial": "seeds that partly learn",
                                                   "val_accuracy": "mean val accuracy"}), parse_numbers=False) + "\n")


def leaderboard_table(result: Analysis, outcome: Outcome = VAL_ACCURACY) -> pd.DataFrame:
    """The README's leaderboard: the top configs by mean val accuracy (or another `outcome`) over seeds."""
    configs = result.configs
    tested = configs["test_accuracy_mean"].notna().any()  # trials with a test set (not every experiment's runs)
    confirmed = (configs["stage"] == CONFIRMED).any()
    rows = []
    for rank, (_, row) in enumerate(configs.head(LEADERBOARD_ROWS).iterrows(), start=1):
        shown: dict = {"rank": rank}
        if confirmed:
            shown["seeds used"] = "confirm" if row["stage"] == CONFIRMED else "main"
        shown.update({f: row[f] for f in result.factors})
        shown["seeds"] = int(row["n"])
        shown[f"{outcome.label} [95% CI]"] = (f"{outcome.value(row[f'{PRIMARY}_mean'])} "
                                              f"{outcome.interval(row[f'{PRIMARY}_ci_low'], row[f'{PRIMARY}_ci_high'])}")
        if confirmed:
            shown[f"{outcome.label}, main seeds"] = outcome.value(row["selection_mean"])
        if tested:
            shown["test accuracy"] = fmt.value(row["test_accuracy_mean"], "test_accuracy")
        shown["seeds that fail"] = f"{int(row.get('failed', 0))} of {int(row['n'])}"
        rows.append(shown)
    return pd.DataFrame(rows)


def leaderboard_section(result: Analysis, out: Path) -> str:
    configs = result.configs
    configs.to_csv(out / "tables" / "leaderboard.csv", index=False)
    write_latex(leaderboard_table(result), out / "tables" / "leaderboard.tex")
    seeds_note = ("With one seed per config there is no interval over seeds (n/a): add seeds to get one. "
                  if configs["n"].max() < 2 else "")
    more = (f" The top {LEADERBOARD_ROWS} of {len(configs)}; every config with std, val loss and test intervals in "
            "`tables/leaderboard.csv`." if len(configs) > LEADERBOARD_ROWS else "")
    confirm = result.spec.confirm
    stage = ""
    if (configs["stage"] == CONFIRMED).any():
        stage = (f" **Confirmed top:** the {confirm.top_k} best configs on the main seeds {list(result.spec.seeds)} "
                 f"were trained again on the confirm seeds {list(confirm.seeds)}; they come first, ranked and shown "
                 "by their confirm-seed numbers, which played no part in picking them (`val accuracy, main "
                 "seeds` is the mean that picked them: the drop between the two is the selection bias).")
    elif confirm is not None:
        stage = (" The confirm stage has not run yet (it starts when every main trial is done): the top is "
                 "decided by the main seeds alone.")
    return ("## Leaderboard\n\n"
            "Per config: the kept model's validation accuracy (the epoch with the lowest val_loss, its weights "
            f"restored), mean and 95% interval over seeds (the unit is the seed){_noise(result)}, its test "
            f"accuracy, and how many seeds fail.{stage}{more} {seeds_note}\n\n"
            + fmt.markdown(leaderboard_table(result), parse_numbers=False) + "\n")


def _noise(result: Analysis) -> str:
    size = result.rule.validation_size
    if size <= 0:
        return " (Student t; the validation split's size is not known, so its sampling error is not included)"
    return (f", widened by the validation split's sampling error ({size:,} images, binomial; the seeds are scored "
            "on the same images, so their scatter does not contain it; Welch-Satterthwaite degrees of freedom): "
            "never zero-width, even when every seed scores the same")


def path_table(result: Analysis) -> pd.DataFrame:
    rows = []
    for _, row in result.path.iterrows():
        rows.append({"step": int(row["step"]), "flip": row["flip"], "seeds": int(row["n"]),
                     "val acc mean": fmt.value(row["mean"], PRIMARY),
                     "95% CI": fmt.interval(row["ci_low"], row["ci_high"], PRIMARY),
                     "gain vs previous step": fmt.delta(row["gain"], PRIMARY) if row["step"] else "",
                     "gain 95% CI (paired by seed)": fmt.interval(row["gain_ci_low"], row["gain_ci_high"], PRIMARY,
                                                                   True) if row["step"] else "",
                     "config": row["config"]})
    return pd.DataFrame(rows)


def path_section(result: Analysis, out: Path) -> str:
    head = "## Ablation path\n\n"
    if not result.factors:
        return head + "No factors: no path.\n"
    source = ", ".join(f"{f}={v}" for f, v in result.path_source.items())
    intro = (f"Read off the trials (Fawcett & Hoos, 2016): from {result.path_source_name}'s level of each factor "
             f"({source}; the study's other settings stay as in its spec) to the best "
             "config by mean val accuracy over the main seeds, flip one factor at a time to the best config's "
             "level, each time taking the flip whose config has the highest mean val accuracy over the main seeds. "
             "Intervals: Student t over seeds (the unit is the seed); the gain of a step is paired by seed. ")
    if result.path_seeds == "confirm":
        intro += (f"The order was decided on the main seeds; **every number below is measured on the confirm "
                  f"seeds {list(result.spec.confirm.seeds)}**, which played no part in choosing the path. ")
    if result.path_source_note:
        intro += f"Note: {result.path_source_note}. "
    if result.path.empty:
        return head + intro + f"\n\nNo path: {result.path_note}.\n"
    result.path.to_csv(out / "tables" / "ablation_path.csv", index=False)
    figure = figures.ablation_path_plot(result.path, "val accuracy", out / "figures" / "ablation_path.png")
    ending = (f"\n\nThe path stops early: {result.path_note}.\n" if result.path_note else "\n")
    return (head + intro + "\n\n" + fmt.markdown(path_table(result), parse_numbers=False) + ending
            + f"\n![ablation path](figures/{figure.name})\n")


class TrialsSection:
    def render(self, ctx: ReportContext) -> str:
        return divergence_section(ctx.result, ctx.all_runs, ctx.expected, ctx.out) if ctx.result else ""


class LeaderboardSection:
    def render(self, ctx: ReportContext) -> str:
        return leaderboard_section(ctx.result, ctx.out) if ctx.result else ""


class PathSection:
    def render(self, ctx: ReportContext) -> str:
        return path_section(ctx.result, ctx.out) if ctx.result else ""
