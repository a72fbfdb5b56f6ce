"""Does the gradient vanish towards the input? The per-layer gradient norms the probes logged, per activation.

The measured norms (the probes of study.training.probes), over every config, or within the condition a companion
names (the lesson's: where it explains sigmoid's failure by vanishing gradients).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from study.analysis.gradients import gradient_table, layer_profile
from study.core.names import GRAD_NORM_PREFIX
from study.report.figures.gradient_figures import gradient_norms_by_layer
from study.report.section import ReportContext


class GradientsSection:
    """The gradient norm per layer after the first and last epoch, one line per activation, seed bands;
    `condition`: the configs to read (column -> levels; a factor the study fixes is already fixed), `reading`:
    what a shrinking gradient means to whoever named the condition."""

    def __init__(self, condition: Mapping[str, Sequence] | None = None,
                 reading: str = "the vanishing gradient") -> None:
        self.condition = dict(condition or {})
        self.reading = reading

    def _condition(self, tidy: pd.DataFrame) -> dict[str, Sequence]:
        return {column: levels for column, levels in self.condition.items()
                if column in tidy and tidy[column].nunique() > 1}

    def render(self, ctx: ReportContext) -> str:
        tidy, curves = ctx.tidy, ctx.curves
        if (tidy.empty or curves.empty or "activation" not in tidy or tidy["activation"].nunique() < 2
                or not curves["metric"].str.startswith(GRAD_NORM_PREFIX).any()):
            return ""
        condition = self._condition(tidy)
        profile = layer_profile(curves, tidy, by="activation", condition=condition)
        if profile.empty:
            return ""
        profile.to_csv(ctx.table_path("gradient_norms_by_layer"), index=False)
        gradient_table(curves).to_csv(ctx.table_path("gradients_per_trial"), index=False)
        where = ", ".join(f"{column} in {{{', '.join(str(v) for v in levels)}}}" for column, levels in condition.items())
        figure = gradient_norms_by_layer(profile, ctx.figure_path("gradient_norms_by_layer"),
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
                "max over seeds). A gradient that shrinks from the output towards the input is "
                f"{self.reading}" + (f". After the first epoch, {'; '.join(ratios)}." if ratios
                                                           else ".") + "\n\n"
                f"![Gradient norm by layer](figures/{figure.name})\n\n"
                "Per trial: `tables/gradients_per_trial.csv`; the profile: `tables/gradient_norms_by_layer.csv`.\n")
