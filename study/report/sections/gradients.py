"""Does the gradient vanish towards the input? The per-layer gradient norms the probes logged, per activation.

The lesson explains sigmoid's failure by vanishing gradients; this section shows the measured norms (the probes of
study.training.probes) instead of the inference, in the lesson's condition where the study ran it.
"""

from __future__ import annotations

import pandas as pd

from study.analysis.gradients import LESSON_CONDITION, gradient_table, layer_profile
from study.core.names import GRAD_NORM_PREFIX
from study.report.figures import lesson_figures as figures
from study.report.section import ReportContext


def _condition(tidy: pd.DataFrame) -> dict[str, tuple]:
    """The lesson's condition, restricted to the factors this study has (a factor it fixes is already fixed)."""
    return {column: levels for column, levels in LESSON_CONDITION.items()
            if column in tidy and tidy[column].nunique() > 1}


class GradientsSection:
    """The gradient norm per layer after the first and last epoch, one line per activation, seed bands."""

    def render(self, ctx: ReportContext) -> str:
        tidy, curves = ctx.tidy, ctx.curves
        if (tidy.empty or curves.empty or "activation" not in tidy or tidy["activation"].nunique() < 2
                or not curves["metric"].str.startswith(GRAD_NORM_PREFIX).any()):
            return ""
        condition = _condition(tidy)
        profile = layer_profile(curves, tidy, by="activation", condition=condition)
        if profile.empty:
            return ""
        profile.to_csv(ctx.table_path("gradient_norms_by_layer"), index=False)
        gradient_table(curves).to_csv(ctx.table_path("gradients_per_trial"), index=False)
        where = ", ".join(f"{column} in {{{', '.join(str(v) for v in levels)}}}" for column, levels in condition.items())
        figure = figures.gradient_norms_by_layer(profile, ctx.figure_path("gradient_norms_by_layer"),
                                                 f"Configs with {where or 'every config'}")
        first = profile[profile["epoch"] == profile["epoch"].min()]
        ratios = []
        for level, rows in first.groupby("level", sort=True):
            hidden = rows[rows["layer"].str.match(r".*\d+$")].sort_values("layer_index")
            if len(hidden) >= 2:
                ratio = hidden["mean"].iloc[0] / hidden["mean"].iloc[-1]
                ratios.append(f"{level}: first / last hidden layer {ratio:.3g}")
        return ("## Gradients by layer (measured)\n\n"
                "The L2 norm of the training loss's gradient per layer's kernel, on a fixed probe batch of 512 "
                f"training images after each epoch ({where or 'every config'}; line: mean over seeds, band: min to "
                "max over seeds). A gradient that shrinks from the output towards the input is the vanishing "
                "gradient the lesson blames on sigmoid" + (f". After the first epoch, {'; '.join(ratios)}." if ratios
                                                           else ".") + "\n\n"
                f"![Gradient norm by layer](figures/{figure.name})\n\n"
                "Per trial: `tables/gradients_per_trial.csv`; the profile: `tables/gradient_norms_by_layer.csv`.\n")
