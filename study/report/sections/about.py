"""The sections that say where a report comes from: summary header, methods, spec, files, reproducibility."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd
import yaml

from study.core.text import format_duration
from study.report.section import ReportContext
from study.spec.study_spec import StudySpec, spec_hash


def _header(spec: StudySpec, expected: list, all_runs: pd.DataFrame, frame: pd.DataFrame, parents: list) -> str:
    tags = parents[0].data.tags if parents else {}
    counts = all_runs["status"].value_counts().to_dict() if not all_runs.empty else {}
    factor_text = ", ".join(f"`{f}` ({len(levels)})" for f, levels in spec.factors.items()) or "none"
    lines = [
        f"# Study `{spec.name}`",
        "",
        spec.description.strip(),
        "",
        "## Summary",
        "",
        f"- Spec: `{spec.source}` (hash `{spec_hash(spec.raw)}`), design `{spec.design}`, factors {factor_text}, "
        f"seeds {list(spec.seeds)}.",
        f"- Each trial: {spec.base.epochs} epochs, batch {spec.base.batch_size}, validation `{spec.base.validation}`"
        + (f", first {spec.base.train_subset} training images" if spec.base.train_subset else "")
        + f", backend `{spec.base.backend}`.",
        f"- Trials: {len(frame)} of {len(expected)} finished. MLflow runs by status: "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none") + ".",
    ]
    if not frame.empty:
        total = frame["wall_time_s"].sum()
        lines.append(f"- Training time: {format_duration(total)} in total, {frame['wall_time_s'].mean():.1f} s per "
                     f"trial on average ({frame['wall_time_s'].sum() / max(1, frame['epochs_run'].sum()):.2f} s per "
                     f"trial-epoch).")
    if tags:
        lines.append(f"- Data: {tags.get('data_source', 'n/a')} (sha256 of every array verified).")
    lines.append("- Versions, machine and commands: see [Reproducibility](#reproducibility) at the end.")
    return "\n".join(lines) + "\n"


def _spec_section(spec: StudySpec) -> str:
    text = Path(spec.source).read_text().strip() if Path(spec.source).is_file() else yaml.safe_dump(spec.raw)
    return "## Spec\n\n```yaml\n" + text + "\n```\n"


METHODS = """## How the numbers are computed

- **Metric.** `val accuracy` is the validation accuracy of the kept model (the epoch with the lowest val_loss,
  whose weights ModelCheckpoint saved and restored); `test accuracy` is that model on the test set, evaluated once.
- **Per config.** Mean over seeds with a 95% Student-t interval, clipped to [0, 100]% for accuracies (t rather
  than bootstrap: with 3 seeds a bootstrap has only 10 distinct resamples and undercovers).
- **Effects.** Paired differences level - reference over every combination of the other factors and seed; mean
  with a 95% t interval; two-sided Wilcoxon signed-rank test (scipy, Pratt's handling of zero differences); Holm
  correction (statsmodels) over all level-vs-reference comparisons of one metric; P(level > ref) = share of pairs
  won, ties counting half (the probability of improvement of Bouthillier et al., MLSys 2021).
- **Interactions and importance.** OLS ANOVA (statsmodels, type II) with all main effects and two-way
  interactions; share of variance = sum of squares / total sum of squares; importance = main-effect share.
- **Ablation path.** Fawcett & Hoos (2016), read off the trials: greedy one-factor flips from the lesson's first
  model to the best config by mean val accuracy.
- **Selection.** The best config is picked on val accuracy among all configs, so its val mean is optimistic (the
  winner's curse); its test accuracy, never used for any choice, is the unbiased check.
- **Divergence.** A trial whose loss turned NaN/inf is a result, never dropped: it keeps its kept checkpoint's
  metrics, or chance accuracy (10%) if it had no finite epoch.
- **Learning curves.** Per seed, the mean over the trials at a level; plotted: the mean over seeds, band = min..max
  over seeds.
"""


def _files_section(out: Path) -> str:
    described = {
        "trials": "one row per finished trial: key, status, seed, levels, every config field, final metrics",
        "epoch_metrics": "one row per (trial, metric, epoch): loss, accuracy, val_loss, val_accuracy, learning_rate",
        "leaderboard": "per config: n, mean, std, 95% t interval of val/test accuracy and val loss",
        "effects_final_val_accuracy": "paired effects on val accuracy (all columns)",
        "effects_test_accuracy": "paired effects on test accuracy",
        "effects_final_val_loss": "paired effects on val loss",
        "anova": "ANOVA terms: df, sum of squares, share, F, p",
        "importance": "importance ranking",
        "ablation_path": "the ablation path with intervals",
        "diverged_trials": "every diverged trial",
        "missing_trials": "expected trials without a finished result",
        "learning_rates": "planned vs logged learning rate per schedule and epoch",
        "init_weights": "sampled vs theoretical std of each initializer",
        "lesson_comparison": "the lesson's per-epoch training loss and accuracy beside ours",
    }
    rows = []
    for name, text in described.items():
        present = [ext for ext in ("csv", "parquet") if (out / "tables" / f"{name}.{ext}").is_file()]
        if present:
            rows.append(f"- `tables/{name}.{{{','.join(present)}}}`: {text}." if len(present) > 1
                        else f"- `tables/{name}.{present[0]}`: {text}.")
    return "## Files\n\n" + "\n".join(rows) + "\n" if rows else ""


def _reproducibility(spec: StudySpec, parents: list, tidy: pd.DataFrame) -> str:
    """Everything needed to rerun the study and regenerate this report."""
    tags = [run.data.tags for run in parents]
    lines = ["## Reproducibility", "",
             f"- Spec `{spec.source}`, hash `{spec_hash(spec.raw)}`; seeds {list(spec.seeds)}.",
             f"- Code: {_git_revision()}."]
    backends = sorted(tidy["backend"].dropna().unique()) if "backend" in tidy else []
    lines.append(f"- Keras backend: {', '.join(f'`{b}`' for b in backends) or f'`{spec.base.backend}` (spec)'}.")
    if tags:
        latest = tags[0]
        versions = ", ".join(f"{k.removeprefix('version.')} {v}" for k, v in sorted(latest.items())
                             if k.startswith("version."))
        lines.append(f"- Training versions (latest invocation): {versions}.")
        machines = sorted({f"{t.get('machine.cpu', '?')}, {t.get('machine.cores', '?')} cores, "
                           f"{t.get('machine.platform', '?')}" for t in tags})
        lines.append("- Machine(s): " + "; ".join(machines) + ".")
        commands = sorted({t.get("command", "?") for t in tags})
        lines.append(f"- Training command(s), {len(tags)} invocation(s): " + "; ".join(f"`{c}`" for c in commands) + ".")
    else:
        lines.append("- No training invocation recorded in this store yet.")
    lines.append(f"- Report: `python -m study report {spec.source}` with " + ", ".join(
        f"{name} {_version(name)}" for name in ("pandas", "scipy", "statsmodels", "matplotlib", "numpy")) + ".")
    return "\n".join(lines) + "\n"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _git_revision() -> str:
    try:
        package = Path(__file__).resolve().parent  # the code that wrote this report, wherever it runs from
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True, cwd=package).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
                               capture_output=True, text=True, timeout=10, check=True, cwd=package).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"git `{commit}`" + (" with uncommitted changes in `study/`" if dirty else "")




class HeaderSection:
    def render(self, ctx: ReportContext) -> str:
        header = _header(ctx.spec, ctx.expected, ctx.all_runs, ctx.tidy, ctx.parents)
        if ctx.lesson:
            return header
        return header.replace("\n- Trials: ", "\n" + _model_line(ctx) + "\n- Trials: ", 1)


def _model_line(ctx: ReportContext) -> str:
    """What a study of your own trains: its model(s), data and declared hyperparameters."""
    configs = [t.config for t in ctx.expected]
    models = ", ".join(f"`{m}`" for m in sorted({c.model for c in configs}))
    data = ", ".join(f"`{d}`" for d in sorted({c.dataset for c in configs}))
    own = ", ".join(f"`{n}` ({h.factor.kind}, default {h.default})" for n, h in ctx.spec.hyperparameters.items())
    return (f"- Model: {models} on {data}; the framework's optimizer, loss, schedules and callbacks"
            + (f"; its own hyperparameters (MLflow params `hp.<name>`): {own}." if own else "."))


class MethodsSection:
    def render(self, ctx: ReportContext) -> str:
        return METHODS if ctx.lesson else METHODS.replace("the lesson's first\n  model", "the study's base\n  config")


class SpecSection:
    def render(self, ctx: ReportContext) -> str:
        return _spec_section(ctx.spec)


class FilesSection:
    def render(self, ctx: ReportContext) -> str:
        return _files_section(ctx.out)


class ReproducibilitySection:
    def render(self, ctx: ReportContext) -> str:
        return _reproducibility(ctx.spec, ctx.parents, ctx.tidy)
