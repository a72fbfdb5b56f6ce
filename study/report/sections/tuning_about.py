"""The tuning report's framing sections: what was searched and how, the best and top trials, the spec."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.analysis.runs import parent_runs
from study.core.text import format_duration, redact_url
from study.report.format import markdown_table
from study.report.section import ResultsSection, TuneContext
from study.report.sections.tuning import ordered_trials, value_text
from study.spec.study_spec import spec_hash

TOP = 10


class TuneHeaderSection:
    """Title, objective, sampler and pruner, trial counts, provenance and the search space."""

    def render(self, ctx: TuneContext) -> str:
        spec, trials = ctx.spec, ctx.trials
        parents = parent_runs(spec.name)
        tags = parents[0].tags if parents else {}
        counts = trials["state"].value_counts().to_dict() if not trials.empty else {}
        base = ", ".join(f"{k}={v}" for k, v in spec.base.values().items()  # unset fields (train:, ...) say nothing
                         if k not in spec.space and k != "seed" and v is not None)
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
            f"- Spec: `{spec.source}` (hash `{spec_hash(spec.raw)}`). Optuna study `{spec.name}` in "
            f"`{redact_url(ctx.storage_url)}`; MLflow experiment `{spec.name}`.",
            "- Base config" + (f" (best config of the ablation study `{spec.base_from}` by mean val accuracy over "
                                "seeds, then this spec's own settings)" if spec.base_from else "") + f": `{base}`.",
            f"- Objective: {spec.direction} `{spec.metric}` of the kept model (the epoch with the lowest val_loss), "
            f"validation `{spec.base.validation}`, tuning seed {spec.base.seed}.",
            f"- Sampler `{spec.sampler.name}` ({options(spec.sampler)}); pruner `{spec.pruner.name}`"
            + (f" ({options(spec.pruner)})" if spec.pruner.options else "")
            + "; pruning steps are epochs completed.",
            f"- Trials: {int(counts.get('COMPLETE', 0) + counts.get('PRUNED', 0))} of n_trials={spec.n_trials} "
            "counted (complete + pruned). Optuna states: "
            + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none") + ".",
        ]
        if not trials.empty:
            lines.append(f"- Tuning time: {format_duration(trials['duration_s'].sum(skipna=True))} summed over "
                         "trials.")
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


class NoTrialsSection:
    """Before any trial completed: what to run (the sections about results stay empty)."""

    def render(self, ctx: TuneContext) -> str:
        if ctx.has_results:
            return ""
        return f"No completed trials yet: run `python -m study tune {ctx.spec.source}` first.\n"


class BestTrialSection(ResultsSection):
    """The best trial, with the warning that its value is a maximum over trials on one seed."""

    def body(self, ctx: TuneContext) -> str:
        spec, trials = ctx.spec, ctx.trials
        trials.to_csv(ctx.table_path("trials"), index=False)
        ctx.curves.to_csv(ctx.table_path("intermediate_values"), index=False)
        best = ordered_trials(spec, trials).iloc[0]
        params = ", ".join(f"`{n}` = {value_text(best[n])}" for n in spec.space)
        base = ", ".join(f"`{n}` = {value_text(v)}" for n, v in spec.base_params().items())
        test = f"; its test accuracy {best['test_accuracy']:.4f}" if not pd.isna(best["test_accuracy"]) else ""
        return (f"## Best trial\n\nTrial #{int(best['number'])}: {spec.metric} **{best['value']:.4f}** with {params} "
                f"(untuned base: {base}){test}. MLflow run `{best['mlflow_run_id']}`. This value is the best of "
                f"{int((trials['state'] == 'COMPLETE').sum())} completed trials on one seed and one validation set, "
                "so it is optimistic; the retraining below measures the tuned config honestly.\n")


class TopTrialsSection(ResultsSection):
    """The best TOP completed trials with their values, cost and MLflow runs."""

    def body(self, ctx: TuneContext) -> str:
        spec = ctx.spec
        top = ordered_trials(spec, ctx.trials).head(TOP)
        columns = ["number", "value", *spec.space, "epochs_run", "duration_s", "test_accuracy", "enqueued",
                   "mlflow_run_id"]
        top = top[columns].rename(columns={"value": spec.metric})
        top.to_csv(ctx.table_path("top_trials"), index=False)
        return (f"## Top {min(TOP, len(top))} trials\n\nCompleted trials by {spec.metric} (all trials with states, "
                "epochs and run ids in `tables/trials.csv`).\n\n" + markdown_table(top) + "\n")


class TuneSpecSection:
    """The spec as written (its file, or the parsed mapping when it came from elsewhere)."""

    def render(self, ctx: TuneContext) -> str:
        import yaml

        spec = ctx.spec
        text = Path(spec.source).read_text().strip() if Path(spec.source).is_file() else yaml.safe_dump(spec.raw)
        return "## Spec\n\n```yaml\n" + text + "\n```\n"
