"""One synthesis of the lesson: every lesson claim x every study that tests it, and one line per claim.

Each study reads each claim in the lesson's condition and over its whole grid, at its own budget
(epochs, network, training images, seeds, whether the learning rate was swept). Studies disagree for
reasons: a warm-up measured at an untuned peak rate in 5 epochs is not the warm-up of a 30-epoch run.
So the overall line per claim never averages verdicts: when they agree it says so, and when they
disagree it names where each verdict was reached and what differs between those studies (budget,
condition, the notes each study attached). The lesson's first model gets its own row: reproduced or
not, per reported epoch, against the spread of our seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study.analysis.claim_table import NOT_TESTABLE
from study.lesson.sections import LESSON_EPOCHS
from study.lesson.studies import FIRST_MODEL_STUDY, LessonStudy, learning_rate_share
from study.report import format as fmt


def claim_rows(studies: list[LessonStudy]) -> pd.DataFrame:
    """Every (claim, study, reading) row with its verdict, condition and the study's budget."""
    rows = []
    for study in studies:
        claims = study.claims.reset_index(drop=True)
        for index, row in claims.iterrows():
            schedule = row["contrast"].split(": ")[1].split(" vs ")[0] if row["contrast"].startswith("schedule:") else ""
            rows.append({"claim": row["claim"], "study": study.name, "reading": row.get("scope", ""),
                         "contrast": row["contrast"], "stated": _stated(claims, index),
                         "condition": row.get("condition", ""), "measure": row["measure"], "diff": row["diff"],
                         "ci_low": row["ci_low"], "ci_high": row["ci_high"], "verdict": row["verdict"],
                         "why": row.get("why", ""), "holds": row.get("holds", ""), "reverses": row.get("reverses", ""),
                         "budget": study.budget,
                         "rate_share": learning_rate_share(study, schedule) if schedule else ""})
    return pd.DataFrame(rows)


def _stated(claims: pd.DataFrame, index: int) -> str:
    """The claim's own condition: the whole-grid reading's condition (the row itself, or the one after a
    lesson's-condition row of the same contrast)."""
    row = claims.loc[index]
    if row.get("scope") == "whole grid":
        return row["condition"]
    after = claims.loc[index + 1] if index + 1 in claims.index else None
    if (row.get("scope") == "lesson's condition" and after is not None and after.get("scope") == "whole grid"
            and after["contrast"] == row["contrast"] and after["measure"] == row["measure"]):
        return after["condition"]
    return ""


def _entry(row: pd.Series) -> str:
    """Where one verdict was reached: the study, the contrast (with its stated condition), the reading."""
    measure = "" if row["measure"] == "val accuracy" else f", {row['measure']}"
    stated = f" within {row['stated']}" if row["stated"] else ""
    return f"{row['study']} ({row['contrast']}{stated}{measure}; {row['reading']})"


def overall_line(rows: pd.DataFrame) -> str:
    """One line for one claim: agreement, or where each verdict was reached and what differs."""
    tested = rows[rows["verdict"] != NOT_TESTABLE]
    if tested.empty:
        reasons = sorted({w.split(";")[0] for w in rows["why"] if w})
        return "Not testable in any study: " + "; ".join(reasons) + "."
    kinds = tested["verdict"].map(lambda v: "depends" if v.startswith("depends on") else v)
    groups = {kind: tested[kinds == kind] for kind in dict.fromkeys(kinds)}
    where = "; ".join(f"**{kind if kind != 'depends' else 'depends on another factor'}** in "
                      + "; ".join(_entry(r) for _, r in group.iterrows())
                      for kind, group in groups.items())
    if len(groups) == 1:
        return f"Consistent: {where}." + _untested(rows)
    return f"The studies disagree: {where}. What differs: {_differences(groups)}." + _untested(rows)


def _differences(groups: dict[str, pd.DataFrame]) -> str:
    """What separates the studies and readings behind different verdicts: their budgets, conditions, notes."""
    parts = []
    budgets = {kind: sorted(set(group["budget"])) for kind, group in groups.items()}
    if len({tuple(b) for b in budgets.values()}) > 1:
        parts.append("budget (" + "; ".join(f"{kind}: {' | '.join(b)}" for kind, b in budgets.items()) + ")")
    readings = {kind: sorted(set(group["reading"])) for kind, group in groups.items()}
    if len({tuple(r) for r in readings.values()}) > 1:
        parts.append("reading (" + "; ".join(f"{kind}: {', '.join(r)}" for kind, r in readings.items()) + ")")
    for kind, group in groups.items():
        for _, row in group.iterrows():
            if row["holds"]:
                parts.append(f"in {row['study']}, {row['contrast']} holds at {row['holds']} and reverses at "
                             f"{row['reverses']}")
            elif row["why"]:
                parts.append(f"{row['study']}: {row['why']}")
            if row["rate_share"]:
                parts.append(f"in {row['study']}, {row['rate_share']}")
    return "; ".join(dict.fromkeys(parts)) or "nothing recorded: unexplained"


def _untested(rows: pd.DataFrame) -> str:
    untested = rows[rows["verdict"] == NOT_TESTABLE]
    if untested.empty:
        return ""
    named = sorted({f"{r['study']} ({r['why'].split(';')[0]})" for _, r in untested.iterrows() if r["why"]})
    return " Not testable in " + "; ".join(named) + "."


def first_model_rows(study: LessonStudy | None) -> pd.DataFrame:
    """Per epoch the lesson reports: its training loss/accuracy beside our seeds' mean, SD and range, and
    whether it lies within the spread of our seeds."""
    columns = ["epoch", "metric", "lesson", "ours_mean", "ours_sd", "ours_min", "ours_max", "seeds", "z",
               "reproduced"]
    if study is None:
        return pd.DataFrame(columns=columns)
    curves_path = study.report / "tables" / "epoch_metrics.csv"
    if not curves_path.is_file():
        return pd.DataFrame(columns=columns)
    curves = pd.read_csv(curves_path)
    rows = []
    for epoch, (loss, accuracy) in LESSON_EPOCHS.items():
        for metric, lesson in (("loss", loss), ("accuracy", accuracy)):
            values = curves[(curves["metric"] == metric) & (curves["epoch"] == epoch - 1)]["value"].astype(float)
            if values.empty:
                continue
            mean, sd = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            rows.append({"epoch": epoch, "metric": metric, "lesson": lesson, "ours_mean": mean, "ours_sd": sd,
                         "ours_min": float(values.min()), "ours_max": float(values.max()), "seeds": len(values),
                         "z": (lesson - mean) / sd if sd and np.isfinite(sd) else float("nan"),
                         "reproduced": bool(values.min() <= lesson <= values.max())})
    return pd.DataFrame(rows, columns=columns)


def first_model_text(table: pd.DataFrame, study: LessonStudy | None) -> str:
    if table.empty:
        return (f"No report of `{FIRST_MODEL_STUDY}` with its per-epoch metrics: run "
                f"`python -m study run ablations/{FIRST_MODEL_STUDY}.yaml` first.\n")
    shown = pd.DataFrame({
        "epoch": table["epoch"], "metric": "training " + table["metric"],
        "lesson": table["lesson"].map(lambda v: f"{v:.4f}"),
        "ours: mean ± SD [min, max]": [f"{m:.4f} ± {s:.4f} [{lo:.4f}, {hi:.4f}]" for m, s, lo, hi in
                                       zip(table["ours_mean"], table["ours_sd"], table["ours_min"], table["ours_max"])],
        "lesson in SDs from our mean": table["z"].map(lambda z: f"{z:+.1f}"),
        "reproduced": table["reproduced"].map({True: "yes: within our seeds", False: "no: outside all our seeds"})})
    missed = table[~table["reproduced"]]
    seeds = int(table["seeds"].max())
    if missed.empty:
        why = (f"Every number the lesson reports lies within the range of our {seeds} seeds: its single run is one "
               "draw of the same seed-to-seed spread.")
    else:
        epochs = ", ".join(sorted({f"epoch {int(e)}" for e in missed["epoch"]}))
        why = (f"**Not reproduced at {epochs}**: the lesson's value lies outside all {seeds} of our seeds "
               f"({', '.join(f'{r.metric} {r.z:+.1f} SD' for r in missed.itertuples())}), so seed-to-seed variation "
               "does not explain it. Our run is the lesson's code path (Keras `fit`, TensorFlow backend, the same "
               "data, model, initialiser, optimizer, batch and epochs); what we cannot replay is the lesson's own "
               "Keras/TensorFlow version and its one unrecorded seed. Cause: **unexplained** (not measured here).")
    return (f"From `{study.name}` ({study.budget}; its report: `reports/{study.name}/`).\n\n"
            + fmt.markdown(shown, parse_numbers=False) + "\n\n" + why + "\n")


def synthesis(studies: list[LessonStudy]) -> tuple[str, pd.DataFrame]:
    """The markdown of reports/lesson/README.md and its claims x studies table."""
    rows = claim_rows([s for s in studies if not s.claims.empty])
    baseline = next((s for s in studies if s.name == FIRST_MODEL_STUDY), None)
    first = first_model_rows(baseline)
    parts = ["# The lesson, across every study that tests it\n",
             "Each lesson claim is tested by several studies at different budgets, and each study reads it twice: "
             "in the lesson's own condition (the first model's levels) and over its whole grid. This page puts "
             "every verdict side by side and gives one line per claim that names where the verdicts differ and "
             "what differs between those studies, instead of averaging them. Written by `python -m study "
             "synthesize` (`make synthesize`) from the committed reports' tables.\n",
             "## The studies\n",
             fmt.markdown(pd.DataFrame([{"study": f"[{s.name}](../{s.name}/README.md)",
                                         "budget": s.budget,
                                         "factors": ", ".join(f"{f} ({len(lv)})" for f, lv in s.spec.factors.items()
                                                              if len(lv) > 1) or "none"} for s in studies]),
                          parse_numbers=False) + "\n",
             "## The lesson's first model: reproduced?\n", first_model_text(first, baseline),
             "## One line per claim\n"]
    if rows.empty:
        parts.append("No lesson study with a claims table was found.\n")
        return "\n".join(parts), rows
    for claim, group in rows.groupby("claim", sort=False):
        parts.append(f"- **{claim}.** {overall_line(group)}")
    parts.append("\n## Every verdict\n\nOne row per claim, study and reading (`tables/claims_by_study.csv` has the "
                 "contrasts' numbers and every note).\n")
    tested = rows[rows["verdict"] != NOT_TESTABLE]
    table = pd.DataFrame({
        "claim": tested["claim"], "study": tested["study"], "reading": tested["reading"],
        "contrast": tested["contrast"], "condition": tested["condition"].map(lambda c: c or "(none)"),
        "Δ [95% CI]": [fmt.effect(d, lo, hi, "failed" if m.startswith("share") else "final_val_accuracy")
                       for d, lo, hi, m in zip(tested["diff"], tested["ci_low"], tested["ci_high"], tested["measure"])],
        "measure": tested["measure"], "verdict": tested["verdict"]})
    parts.append(fmt.markdown(table, parse_numbers=False) + "\n")
    return "\n".join(parts), rows


def write_synthesis(studies: list[LessonStudy], out: Path) -> Path:
    text, rows = synthesis(studies)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / "tables" / "claims_by_study.csv", index=False)
    first_model_rows(next((s for s in studies if s.name == FIRST_MODEL_STUDY), None)).to_csv(
        out / "tables" / "first_model.csv", index=False)
    readme = out / "README.md"
    readme.write_text(fmt.without_machine_paths(text))
    return readme
