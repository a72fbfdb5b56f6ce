"""Write reports/<study>/README.md + figures/*.png + tables/*.{csv,parquet} from the MLflow store.

A study report is the keyed list SECTIONS, rendered in order over one ReportContext; the spec's
companion (study.analysis.companion: the lesson's) puts its own sections in their keys' places. Every
section degrades to a sentence saying what is missing (no trials yet, one seed, no
factorial, a path config not run), so the report is always complete.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.analysis.chance import failure_rule
from study.analysis.companion import companion_of
from study.analysis.confirm import confirm_trials, path_start
from study.analysis.fair import analyse_fair
from study.analysis.levels import tidy_trials
from study.analysis.gradients import probe_curves
from study.analysis.runs import epoch_curves, parent_runs, trials_frame
from study.analysis.study_analysis import PRIMARY, analyse
from study.analysis.tuned_arms import resolved
from study.report.format import without_machine_paths
from study.report.section import ReportContext, Section
from study.report.sections.adaptive import AdaptiveSection, adaptive_context
from study.report.sections.about import FilesSection, HeaderSection, ReproducibilitySection, SpecSection
from study.report.sections.decomposition import InteractionsSection
from study.report.sections.advice import AdviceSection
from study.report.sections.conditional import ConditionalSection
from study.report.sections.effects import EffectsSection
from study.report.sections.fair import FAIR, FairSection
from study.report.sections.findings import FindingsSection
from study.report.sections.methods import MethodsSection
from study.report.sections.gradients import GradientsSection
from study.report.sections.results import LeaderboardSection, PathSection, TrialsSection
from study.report.sections.schedules import SchedulesSection
from study.spec.study_spec import StudySpec
from study.tracking.store import configure


class NoTrialsYet:
    def render(self, ctx: ReportContext) -> str:
        return "" if not ctx.tidy.empty else f"No finished trials yet: run `python -m study run {ctx.spec.source}` first.\n"


# (key, section): a companion's section takes its key's place; None marks a slot only a companion fills
SECTIONS: list[tuple[str, Section | None]] = [
    ("header", HeaderSection()), ("no_trials", NoTrialsYet()), ("advice", AdviceSection()),
    ("findings", FindingsSection()), ("adaptive", AdaptiveSection()), ("claims", None),
    ("conditional", ConditionalSection()), ("trials", TrialsSection()), ("leaderboard", LeaderboardSection()),
    ("effects", EffectsSection()), ("fair", FairSection()), ("interactions", InteractionsSection()),
    ("path", PathSection()), ("schedules", SchedulesSection()), ("gradients", GradientsSection()),
    ("comparison", None), ("methods", MethodsSection()), ("spec", SpecSection()), ("files", FilesSection()),
    ("reproducibility", ReproducibilitySection()),
]


def sections_for(spec: StudySpec) -> list[Section]:
    """The study report's sections in order, the spec's companion's in their keys' places."""
    companion = companion_of(spec)
    own = dict(companion.sections) if companion is not None else {}
    unknown = set(own) - {key for key, _ in SECTIONS}
    if unknown:
        raise KeyError(f"companion {companion.name!r} names no section of the report: {sorted(unknown)}")
    return [section for key, default in SECTIONS if (section := own.get(key, default)) is not None]


def write_report(spec: StudySpec, tracking_uri: str | None = None, out_root: Path = Path("reports"),
                 data_dir: str | None = None) -> Path:
    """Rewrite reports/<study>/ from whatever finished trials the store holds (`data_dir`: where the
    validation labels are, for the majority-class rate; default as for training)."""
    configure(tracking_uri)
    ctx = build_context(spec, out_root / spec.name, data_dir)
    readme = ctx.out / "README.md"
    text = "\n".join(text for text in (section.render(ctx) for section in sections_for(spec)) if text)
    readme.write_text(without_machine_paths(text))
    return readme


def build_context(spec: StudySpec, out: Path, data_dir: str | None = None) -> ReportContext:
    """Read the store once: every trial run, the finished ones as a tidy frame, their curves, the analysis.

    The expected trials are the spec's, plus the confirm stage's once the main trials are done (the
    same selection the workers made from the same results). A study that tunes each arm is read at its tuned
    values once every arm is tuned (study.analysis.tuned_arms, the decision the workers made)."""
    fresh_output_dirs(out)
    companion = companion_of(spec)
    all_runs = trials_frame(spec.name, include_unfinished=True)
    frame = trials_frame(spec.name)
    every = frame
    spec = resolved(spec, frame)
    expected = spec.unique_trials()
    if not frame.empty and spec.confirm is not None:
        main = frame[frame["trial_key"].isin({t.key for t in expected})].reset_index(drop=True)
        expected = expected + (confirm_trials(spec, tidy_trials(main, spec)) or [])
    if not frame.empty:
        frame = frame[frame["trial_key"].isin({t.key for t in expected})].reset_index(drop=True)
    tidy = tidy_trials(frame, spec)
    ctx = ReportContext(spec=spec, out=out, expected=expected, all_runs=all_runs, tidy=tidy,
                        curves=pd.DataFrame(columns=["run_id", "metric", "epoch", "value"]),
                        parents=parent_runs(spec.name))
    if not tidy.empty:
        ctx.curves = pd.concat([epoch_curves(tidy["run_id"]), probe_curves(tidy["run_id"], structure_keys(tidy))],
                               ignore_index=True)
        export(tidy, ctx.curves, out)
        rule = failure_rule(spec.base, data_dir)
        # the path's start and the claims: the companion's, else the base's and none
        ctx.result = analyse(spec, tidy, path_start(spec), rule, ctx.curves,
                             companion.path_start_name if companion else "the base config",
                             companion.claims if companion else None)
    if spec.tune_each_arm is not None:
        levels = ctx.result.factor_levels if ctx.result else {}
        ctx.extra[FAIR] = analyse_fair(spec, every, levels, ctx.result.effects[PRIMARY] if ctx.result else None)
    if ctx.result is not None and companion is not None and not ctx.result.claims.empty:
        more = companion.more_claims(spec, ctx.extra.get(FAIR), ctx.result.factor_levels)
        ctx.result.claims = pd.concat([ctx.result.claims, more], ignore_index=True)
    adaptive_context(ctx)  # an adaptive study expects the trials its rounds asked for
    return ctx


def structure_keys(tidy: pd.DataFrame) -> list[tuple]:
    """What names a trial's layers (and so its probe metrics): its model and depth."""
    columns = [c for c in ("model", "hidden_layers") if c in tidy]
    return list(tidy[columns].astype(str).itertuples(index=False, name=None)) if columns else [()] * len(tidy)


def fresh_output_dirs(out: Path) -> None:
    """Remove the previous report's generated files, so no stale figure or table survives."""
    for sub, patterns in (("figures", ("*.png",)), ("tables", ("*.csv", "*.parquet", "*.tex"))):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for pattern in patterns:
            for old in (out / sub).glob(pattern):
                old.unlink()


def export(tidy: pd.DataFrame, curves: pd.DataFrame, out: Path) -> None:
    """The tidy data behind the report: one row per trial, one row per (trial, metric, epoch)."""
    long = curves.merge(tidy[["run_id", "trial_key", "seed"]], on="run_id", how="left")
    for name, table in (("trials", tidy), ("epoch_metrics", long)):
        table.to_csv(out / "tables" / f"{name}.csv", index=False)
        try:
            table.to_parquet(out / "tables" / f"{name}.parquet", index=False)
        except ImportError:  # pyarrow missing: CSV is still complete
            pass
