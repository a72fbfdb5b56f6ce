"""Write reports/<study>/README.md + figures/*.png + tables/*.{csv,parquet} from the MLflow store.

This module orders the sections and writes the files; the statistics live in
`study.stats` / `study.report_stats`, the summary in `study.findings`, the lesson's
figures in `study.lesson_figures`.
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd
import yaml

from study import analysis, findings, lesson_figures, report_stats, tracking
from study.config import TrialConfig
from study.runner import format_duration, spec_hash, unique_trials
from study.spec import StudySpec

# The lesson's first model (4x32 ReLU, Xavier, SGD 0.01, batch 32, all 60k images) and
# its reported training loss / accuracy per epoch.
LESSON_FIRST_MODEL = {"hidden_layers": 4, "units": 32, "activation": "relu", "init": "xavier", "batch_norm": False,
                      "dropout": 0.0, "optimizer": "sgd", "learning_rate": 0.01, "schedule": "constant",
                      "batch_size": 32, "train_subset": None, "validation": "test"}
LESSON_EPOCHS = {1: (1.1316, 0.6453), 5: (0.1801, 0.9474)}


def write_report(spec: StudySpec, tracking_uri: str | None = None, out_root: Path = Path("reports")) -> Path:
    """Rewrite reports/<study>/ from whatever finished trials the store holds.

    Every section degrades to a sentence saying what is missing (no trials yet, one
    seed, no factorial, a path config not run), so the report is always complete.
    """
    tracking.configure(tracking_uri)
    out = out_root / spec.name
    _fresh_output_dirs(out)
    all_runs = analysis.trials_frame(spec.name, include_unfinished=True)
    frame = analysis.trials_frame(spec.name)
    expected = unique_trials(spec)
    expected_keys = {t.key for t in expected}
    if not frame.empty:
        frame = frame[frame["trial_key"].isin(expected_keys)].reset_index(drop=True)
    tidy = analysis.tidy_trials(frame, spec)
    parents = _parent_runs(spec.name)
    sections = [_header(spec, expected, all_runs, tidy, parents)]
    curves = pd.DataFrame(columns=["run_id", "metric", "epoch", "value"])
    if tidy.empty:
        sections.append("No finished trials yet: run `python -m study run " + spec.source + "` first. The lesson's "
                        "figures below need no trials.\n")
    else:
        curves = analysis.epoch_curves(tidy["run_id"])
        _export(tidy, curves, out)
        result = report_stats.analyse(spec, tidy, TrialConfig(**LESSON_FIRST_MODEL))
        sections += [
            findings.summary_section(result),
            report_stats.divergence_section(result, all_runs, expected, out),
            report_stats.leaderboard_section(result, out),
            report_stats.effects_section(result, curves, out),
            report_stats.interactions_section(result, out),
            report_stats.path_section(result, out),
        ]
    sections.append(_lesson_figures(spec, expected, tidy, curves, out))
    if not tidy.empty:
        sections.append(_lesson_comparison(tidy, curves, out))
    sections += [METHODS, _spec_section(spec), _files_section(out), _reproducibility(spec, parents, tidy)]
    readme = out / "README.md"
    readme.write_text("\n".join(s for s in sections if s))
    return readme


def _fresh_output_dirs(out: Path) -> None:
    """Remove the previous report's generated files, so no stale figure or table survives."""
    for sub, patterns in (("figures", ("*.png",)), ("tables", ("*.csv", "*.parquet"))):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for pattern in patterns:
            for old in (out / sub).glob(pattern):
                old.unlink()


def _export(tidy: pd.DataFrame, curves: pd.DataFrame, out: Path) -> None:
    """The tidy data behind the report: one row per trial, one row per (trial, metric, epoch)."""
    long = curves.merge(tidy[["run_id", "trial_key", "seed"]], on="run_id", how="left")
    for name, table in (("trials", tidy), ("epoch_metrics", long)):
        table.to_csv(out / "tables" / f"{name}.csv", index=False)
        try:
            table.to_parquet(out / "tables" / f"{name}.parquet", index=False)
        except ImportError:  # pyarrow missing: CSV is still complete
            pass


# --------------------------------------------------------------------------- sections


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
        f"- Spec: `{spec.source}` (hash `{spec_hash(spec)}`), design `{spec.design}`, factors {factor_text}, "
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


def _lesson_figures(spec: StudySpec, expected: list, tidy: pd.DataFrame, curves: pd.DataFrame, out: Path) -> str:
    configs = [t.config for t in expected]
    return ("## The lesson's figures, from our code\n\n"
            + lesson_figures.init_section(out, spec.base.backend) + "\n"
            + lesson_figures.schedule_section(configs, tidy, curves, out))


def _lesson_comparison(frame: pd.DataFrame, curves: pd.DataFrame, out: Path) -> str:
    """The lesson's per-epoch training table beside ours, when the study ran its first model."""
    mask = pd.Series(True, index=frame.index)
    for name, value in LESSON_FIRST_MODEL.items():
        mask &= frame[name].isna() if value is None else frame[name] == value
    runs = frame[mask & (frame["epochs"] >= 5)]
    if runs.empty:
        return ""
    train = curves[curves["run_id"].isin(runs["run_id"]) & curves["metric"].isin(["loss", "accuracy"])]
    stats = train.groupby(["metric", "epoch"])["value"].agg(["mean", "std", "min", "max", "count"]).reset_index()
    rows = []
    for epoch in range(1, 6):
        lesson = LESSON_EPOCHS.get(epoch)
        row = {"epoch": epoch,
               "lesson loss": f"{lesson[0]:.4f}" if lesson else "",
               "lesson accuracy": f"{lesson[1]:.4f}" if lesson else ""}
        for metric in ("loss", "accuracy"):
            s = stats[(stats["metric"] == metric) & (stats["epoch"] == epoch - 1)]
            if not s.empty:
                row[f"ours {metric} (mean ± std)"] = f"{s['mean'].iloc[0]:.4f} ± {s['std'].fillna(0).iloc[0]:.4f}"
                row[f"ours {metric} [min, max]"] = f"[{s['min'].iloc[0]:.4f}, {s['max'].iloc[0]:.4f}]"
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "tables" / "lesson_comparison.csv", index=False)
    last = stats[(stats["metric"] == "accuracy") & (stats["epoch"] == 4)]
    verdict = ""
    if not last.empty:
        low, high, mean = last["min"].iloc[0], last["max"].iloc[0], last["mean"].iloc[0]
        lesson_acc = LESSON_EPOCHS[5][1]
        verdict = (f"\nEpoch-5 training accuracy: ours {mean:.4f} (seeds range {low:.4f} to {high:.4f}), the "
                   f"lesson's {lesson_acc:.4f}, a difference of {100 * (mean - lesson_acc):+.2f} pp"
                   f"{'; the lesson lies inside our seed range' if low <= lesson_acc <= high else ''}. "
                   "The lesson ran once on another Keras/TensorFlow version, so its random initialisation "
                   "and shuffling differ from any of our seeds.\n")
    return ("## The lesson's first model, ours beside the lesson's\n\n"
            f"Training loss and accuracy per epoch of the lesson's first model (4x32 ReLU, Xavier, SGD lr 0.01, "
            f"batch 32, all 60k training images), over {len(runs)} seed(s) of ours. The lesson reports one run "
            "(epochs 1 and 5).\n\n" + _markdown(table) + "\n" + verdict)


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
             f"- Spec `{spec.source}`, hash `{spec_hash(spec)}`; seeds {list(spec.seeds)}.",
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


# --------------------------------------------------------------------------- helpers


def _parent_runs(study_name: str) -> list:
    """The study's invocation runs, newest first."""
    experiment = mlflow.get_experiment_by_name(study_name)
    if experiment is None:
        return []
    return mlflow.search_runs(experiment_ids=[experiment.experiment_id],
                              filter_string=f"tags.{tracking.ROLE_TAG} = 'study'",
                              order_by=["attributes.start_time DESC"], max_results=10_000, output_format="list")


def _markdown(table: pd.DataFrame) -> str:
    """Floats with 4 decimals, integers as integers (tabulate would upcast them)."""
    formats = [".4f" if pd.api.types.is_float_dtype(dtype) else "g" for dtype in table.dtypes]
    return table.to_markdown(index=False, floatfmt=formats)
