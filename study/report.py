"""Write reports/<study>/README.md + figures/*.png + tables/*.csv from the MLflow store."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pandas as pd
import yaml

from study import analysis, tracking
from study.plots import plt
from study.runner import format_duration, spec_hash, unique_trials
from study.spec import StudySpec

# The lesson's first model (4x32 ReLU, Xavier, SGD 0.01, batch 32, all 60k images) and
# its reported training loss / accuracy per epoch.
LESSON_FIRST_MODEL = {"hidden_layers": 4, "units": 32, "activation": "relu", "init": "xavier", "batch_norm": False,
                      "dropout": 0.0, "optimizer": "sgd", "learning_rate": 0.01, "schedule": "constant",
                      "batch_size": 32, "train_subset": None, "validation": "test"}
LESSON_EPOCHS = {1: (1.1316, 0.6453), 5: (0.1801, 0.9474)}


def write_report(spec: StudySpec, tracking_uri: str | None = None, out_root: Path = Path("reports")) -> Path:
    tracking.configure(tracking_uri)
    out = out_root / spec.name
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    all_runs = analysis.trials_frame(spec.name, include_unfinished=True)
    frame = analysis.trials_frame(spec.name)
    expected = unique_trials(spec)
    expected_keys = {t.key for t in expected}
    if not frame.empty:
        frame = frame[frame["trial_key"].isin(expected_keys)].reset_index(drop=True)
    sections = [_header(spec, expected, all_runs, frame)]
    if frame.empty:
        sections.append("No finished trials yet: run `python -m study run " + spec.source + "` first.\n")
    else:
        frame.to_csv(out / "tables" / "trials.csv", index=False)
        curves = analysis.epoch_curves(frame["run_id"], metrics=("loss", "accuracy", "val_loss", "val_accuracy"))
        curves.to_csv(out / "tables" / "epoch_metrics.csv", index=False)
        sections.append(_leaderboard(frame, out))
        sections.append(_effects(spec, frame, curves, out))
        sections.append(_lesson_comparison(frame, curves, out))
    sections.append(_spec_section(spec))
    readme = out / "README.md"
    readme.write_text("\n".join(s for s in sections if s))
    return readme


# --------------------------------------------------------------------------- sections


def _header(spec: StudySpec, expected: list, all_runs: pd.DataFrame, frame: pd.DataFrame) -> str:
    parent = _latest_parent(spec.name)
    tags = parent.data.tags if parent is not None else {}
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
        versions = ", ".join(f"{k.removeprefix('version.')} {v}" for k, v in sorted(tags.items())
                             if k.startswith("version."))
        lines.append(f"- Versions: {versions}.")
        lines.append(f"- Machine: {tags.get('machine.cpu', '?')}, {tags.get('machine.cores', '?')} cores, "
                     f"{tags.get('machine.platform', '?')}.")
        lines.append(f"- Command: `{tags.get('command', '?')}`.")
    return "\n".join(lines) + "\n"


def _leaderboard(frame: pd.DataFrame, out: Path) -> str:
    board = analysis.config_leaderboard(frame)
    board.to_csv(out / "tables" / "leaderboard.csv", index=False)
    factors = analysis.varying_factors(frame)
    shown = board[factors + ["n", "val_acc_mean", "val_acc_std", "test_acc_mean", "test_acc_std", "diverged"]]
    top = shown.head(15)
    return ("## Leaderboard\n\nMean and standard deviation over seeds of the kept model's validation accuracy "
            "(the epoch with the lowest val_loss, restored from ModelCheckpoint) and its test accuracy"
            f"{' (top 15; all in `tables/leaderboard.csv`)' if len(shown) > 15 else ''}.\n\n"
            + _markdown(top) + "\n")


def _effects(spec: StudySpec, frame: pd.DataFrame, curves: pd.DataFrame, out: Path) -> str:
    if not spec.factors:
        return ""
    parts = ["## Main effects\n",
             "For every level: mean, std and n of final validation and test accuracy over all trials at that "
             "level (all other factors and seeds pooled), and the difference of the mean to the reference level "
             "(the first level listed in the spec).\n"]
    val_curves = curves[curves["metric"] == "val_accuracy"].merge(frame[["run_id"] + [
        c for c in frame.columns if c.startswith("level_")]], on="run_id")
    for factor, levels in spec.factors.items():
        table = analysis.main_effects(frame, factor, reference=levels[0].label)
        table.to_csv(out / "tables" / f"effect_{factor}.csv", index=False)
        figure = _factor_curve_figure(factor, [lv.label for lv in levels], val_curves, out)
        parts.append(f"### `{factor}`\n\n{_markdown(table)}\n\n![{factor}](figures/{figure.name})\n")
    return "\n".join(parts)


def _factor_curve_figure(factor: str, labels: list[str], val_curves: pd.DataFrame, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    column = f"level_{factor}"
    for label in labels:
        sub = val_curves[val_curves[column].astype(str) == label] if column in val_curves else val_curves.iloc[0:0]
        if sub.empty:
            continue
        stats = sub.groupby("epoch")["value"].agg(["mean", "std", "count"])
        epochs = stats.index + 1
        ax.plot(epochs, stats["mean"], marker="o", label=f"{label} (n={int(stats['count'].iloc[0])})")
        ax.fill_between(epochs, stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0),
                        alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Validation accuracy by {factor} (mean ± std over trials)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "figures" / f"curves_{factor}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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


# --------------------------------------------------------------------------- helpers


def _latest_parent(study_name: str):
    experiment = mlflow.get_experiment_by_name(study_name)
    if experiment is None:
        return None
    runs = mlflow.search_runs(experiment_ids=[experiment.experiment_id],
                              filter_string=f"tags.{tracking.ROLE_TAG} = 'study'",
                              order_by=["attributes.start_time DESC"], max_results=1, output_format="list")
    return runs[0] if runs else None


def _markdown(table: pd.DataFrame) -> str:
    """Floats with 4 decimals, integers as integers (tabulate would upcast them)."""
    formats = [".4f" if pd.api.types.is_float_dtype(dtype) else "g" for dtype in table.dtypes]
    return table.to_markdown(index=False, floatfmt=formats)
