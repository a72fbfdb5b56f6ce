"""Write reports/<tune study>/README.md + figures/*.png + tables/*.csv.

Trials, their states and intermediate values come from the Optuna storage (the
source of truth for the search, read through study.tuning.search); the retrained base/tuned runs come from MLflow
through study.analysis, like every ablation report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.analysis.runs import parent_runs
from study.core.text import format_duration, redact_url
from study.report.format import markdown_table as _markdown
from study.report.format import without_machine_paths
from study.report.sections.tuning import (ordered_trials as _ordered, history_section, importances_section,
                                          param_map_section, pruning_section, retrain_section, value_text as _fmt)
from study.spec.study_spec import spec_hash
from study.queue.trial_queue import TrialQueue
from study.spec.tune_spec import TuneSpec
from study.tracking.store import configure
from study.tuning.search import Search

TOP = 10
CONFIDENCE = 0.95


def write_tune_report(spec: TuneSpec, queue: TrialQueue, tracking_uri: str | None = None,
                      out_root: Path = Path("reports")) -> Path:
    configure(tracking_uri)
    out = out_root / spec.name
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    search = Search.load(queue, spec.name)
    trials = search.trials_table(spec) if search is not None else pd.DataFrame()
    sections = [_header(spec, trials, queue.url)]
    if trials.empty or not (trials["state"] == "COMPLETE").any():
        sections.append(f"No completed trials yet: run `python -m study tune {spec.source}` first.\n")
    else:
        trials.to_csv(out / "tables" / "trials.csv", index=False)
        curves = search.intermediate_values()
        curves.to_csv(out / "tables" / "intermediate_values.csv", index=False)
        sections += [
            _best(spec, trials),
            _top(spec, trials, out),
            history_section(spec, trials, curves, out),
            importances_section(spec, search, out),
            param_map_section(spec, trials, out),
            pruning_section(spec, trials),
            retrain_section(spec, search, out),
        ]
    sections.append(_spec_section(spec))
    readme = out / "README.md"
    readme.write_text(without_machine_paths("\n".join(s for s in sections if s)))
    return readme


# --------------------------------------------------------------------------- sections


def _header(spec: TuneSpec, trials: pd.DataFrame, storage_url: str) -> str:
    parents = parent_runs(spec.name)
    tags = parents[0].tags if parents else {}
    counts = trials["state"].value_counts().to_dict() if not trials.empty else {}
    base = ", ".join(f"{k}={v}" for k, v in spec.base.values().items() if k not in spec.space and k != "seed")
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
        f"`{redact_url(storage_url)}`; MLflow experiment `{spec.name}`.",
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


def _spec_section(spec: TuneSpec) -> str:
    import yaml

    text = Path(spec.source).read_text().strip() if Path(spec.source).is_file() else yaml.safe_dump(spec.raw)
    return "## Spec\n\n```yaml\n" + text + "\n```\n"


# --------------------------------------------------------------------------- helpers
