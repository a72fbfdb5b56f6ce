"""Fair comparisons (`tune_each_arm`): each arm's tuned values with their uncertainty, its sensitivity curve,
each effect at the fixed and at the tuned values side by side, and what the tuning cost."""

from __future__ import annotations

import math

import pandas as pd

from study.analysis.fair import FairAnalysis
from study.report import format as fmt
from study.report.figures.fair_figures import sensitivity_curves
from study.report.latex import write_latex
from study.report.section import ReportContext
from study.spec.arms import tuning

PRIMARY = "final_val_accuracy"
FAIR = "fair"  # ReportContext.extra key (study.report.study_report.build_context)


def _value(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):.4g}"


def arms_markdown(fair: FairAnalysis, fields: list[str]) -> pd.DataFrame:
    rows = []
    for _, arm in fair.arms.iterrows():
        if "best_val_accuracy" not in arm or pd.isna(arm.get("best_val_accuracy")):
            rows.append({"arm": arm["arm"], "tuned": "(not tuned yet)", "trials": int(arm["trials"])})
            continue
        edges = [f"{f} at the {arm[f'edge_{f}']} end" for f in fields if arm.get(f"edge_{f}")]
        rows.append({
            "arm": arm["arm"],
            "tuned": ", ".join(f"{f}={_value(arm[f])}" for f in fields),
            "val acc (tuning seeds)": fmt.value(arm["best_val_accuracy"], PRIMARY),
            "runner-up": ", ".join(f"{_value(arm[f'runner_up_{f}'])}" for f in fields)
                         + f" ({fmt.value(arm['runner_up_val_accuracy'], PRIMARY)})",
            "near-best range": "; ".join(f"{_value(arm[f'near_low_{f}'])} .. {_value(arm[f'near_high_{f}'])}"
                                         for f in fields),
            "note": "; ".join(edges + (["flat"] if arm.get("flat") else [])),
            "trials": int(arm["trials"]), "trial-epochs": int(arm["trial_epochs"]),
        })
    return pd.DataFrame(rows)


def comparison_markdown(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, v in table.iterrows():
        row = {"factor": v["factor"], "level vs reference": f"{v['level']} vs {v['reference']}"}
        for side in ("fixed", "tuned"):
            if f"{side}_diff" in v:
                row[f"Δ val acc at {side} values [95% CI]"] = (
                    fmt.effect(v[f"{side}_diff"], v[f"{side}_ci_low"], v[f"{side}_ci_high"], PRIMARY)
                    + f" ({v[f'{side}_verdict']})" if pd.notna(v[f"{side}_diff"]) else "n/a")
        if "change" in v:
            row["tuned - fixed"] = fmt.delta(v["change"], PRIMARY)
        rows.append(row)
    return pd.DataFrame(rows)


def fair_section(ctx: ReportContext, fair: FairAnalysis) -> str:
    spec = ctx.spec
    tune = tuning(spec)
    fields = list(tune.fields)
    done = int(fair.arms["trials"].sum()) if not fair.arms.empty else 0
    parts = [f"## Fair comparisons: each arm at its own tuned {', '.join(fields)}\n",
             f"Each of the {len(fair.plan.arms)} arms ("
             + (f"each combination of {', '.join(f'`{a}`' for a in tune.arms)}, the other fields at their base"
                if tune.arms else "every config of the design")
             + f") had its {', '.join(f'`{f}`' for f in fields)} tuned by a {tune.sampler} search of {tune.trials} "
             f"points ({', '.join(_range(tune, f) for f in fields)}) on the tuning seeds {list(tune.seeds)}; the "
             "value with the best mean val accuracy over those seeds was chosen, and the study's trials ran each arm "
             f"at its value on the seeds {list(spec.seeds)}, which played no part in the choice."
             + (" Every section above reads those trials." if fair.tuned else
                f" Not every arm is tuned yet ({done} tuning trials done): until then the sections above read the "
                "design at the spec's fixed values.") + "\n"]
    fair.arms.to_csv(ctx.table_path("tuned_arms"), index=False)
    fair.points.to_csv(ctx.table_path("tuning_points"), index=False)
    if not fair.tuning.empty:
        fair.tuning.to_csv(ctx.table_path("tuning_trials"), index=False)
    parts.append(_cost(fair))
    if not fair.arms.empty and "best_val_accuracy" in fair.arms:
        shown = arms_markdown(fair, fields)
        write_latex(shown, ctx.table_path("tuned_arms", "tex"))
        parts.append("### The tuned values (`tables/tuned_arms.csv`)\n\nThe runner-up is the second-best point; "
                     "the near-best range spans the points whose mean is within 1.96 x the standard error of a "
                     "difference of two point means (seed SD pooled over the arm's points) of the best: values the "
                     "tuning seeds cannot tell apart from the choice.\n\n" + fmt.markdown(shown, parse_numbers=False)
                     + "\n")
        parts.append(_edges_and_flat(fair, fields))
    if not fair.tuning.empty:
        name = fields[0]
        figure = sensitivity_curves(fair.tuning, fair.arms, name, tune.space[name].log, getattr(spec.base, name),
                                    ctx.figure_path("sensitivity"))
        parts.append(f"![each arm's sensitivity](figures/{figure.name})\n")
    if not fair.comparison.empty:
        fair.comparison.to_csv(ctx.table_path("fixed_vs_tuned_effects"), index=False)
        parts.append(_comparison(fair))
    return "\n".join(parts)


def _range(tune, name: str) -> str:  # noqa: ANN001 - a TuneEachArm
    param = tune.space[name]
    return f"{name} {param.low:g} .. {param.high:g}{' (log)' if param.log else ''}"


def _cost(fair: FairAnalysis) -> str:
    cost = fair.cost
    tune, main, fixed = cost["tune"], cost["main"], cost["fixed"]
    text = (f"**What the tuning cost:** {tune['trials']} of {cost['planned_trials']} planned tuning trials, "
            f"{tune['trial_epochs']:,} trial-epochs ({tune['seconds'] / 60:.1f} min of training)")
    others = [f"{label} {side['trial_epochs']:,}" for label, side in (("main stage", main), ("fixed values", fixed))
              if side["trials"]]
    if main["trial_epochs"]:
        text += f", {tune['trial_epochs'] / main['trial_epochs']:.1f}x the main stage's"
    return text + (f" (trial-epochs of the other stages: {', '.join(others)})" if others else "") + ".\n"


def _edges_and_flat(fair: FairAnalysis, fields: list[str]) -> str:
    lines = []
    for name in fields:
        column = f"edge_{name}"
        if column not in fair.arms:
            continue
        for end in ("low", "high"):
            hit = fair.arms[fair.arms[column] == end]["arm"].tolist()
            if hit:
                lines.append(f"- **At the {end} end of the range** ({name}): {'; '.join(hit)}. The best value may lie "
                             f"outside it: widen `tune_each_arm.{name}.{end}` and rerun (the points already trained "
                             "are kept only where the grid keeps them).")
    if "flat" in fair.arms:
        flat = fair.arms[fair.arms["flat"].fillna(False).astype(bool)]["arm"].tolist()
        if flat:
            lines.append(f"- **Flat** (val accuracy moves less than the seed noise or 0.5 pp over the whole range): "
                         f"{'; '.join(flat)}. For these arms {', '.join(fields)} hardly matters: a finding, not a "
                         "failure of the tuning.")
    return ("\n".join(lines) + "\n") if lines else ""


def _comparison(fair: FairAnalysis) -> str:
    table = fair.comparison
    text = ("### Each effect at the fixed and at the tuned values (`tables/fixed_vs_tuned_effects.csv`)\n\n"
            "Block effects on val accuracy (as in the effects section), once over the design at the spec's fixed "
            "values and once at each arm's tuned values, on the same seeds.\n\n"
            + fmt.markdown(comparison_markdown(table), parse_numbers=False) + "\n")
    if "sign_flips" in table:
        flips = table[table["sign_flips"].fillna(False).astype(bool)]
        changed = table[table["verdict_changes"].fillna(False).astype(bool)]
        if len(flips):
            text += ("\nThe sign flips once every arm is tuned: " + "; ".join(
                f"{r['factor']} {r['level']} vs {r['reference']}" for _, r in flips.iterrows())
                + ". At one fixed value these effects measured the fixed value's fit to each arm.\n")
        if len(changed):
            text += ("\nThe verdict changes for " + "; ".join(
                f"{r['factor']} {r['level']} vs {r['reference']} ({r['fixed_verdict']} -> {r['tuned_verdict']})"
                for _, r in changed.iterrows()) + ".\n")
    return text


class FairSection:
    """Only in studies with `tune_each_arm`."""

    def render(self, ctx: ReportContext) -> str:
        fair = ctx.extra.get(FAIR)
        return fair_section(ctx, fair) if fair is not None else ""
