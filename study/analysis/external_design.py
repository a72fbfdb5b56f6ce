"""Any MLflow experiment's runs as a study's tidy trial frame, and what its design allows.

Runs made by any code become trials: the named params are the factors (their values are the levels),
a param or tag gives the seed, the chosen metric is the outcome. Every run that cannot be a trial is
left out with its reason, and every gap in the design (a factor with one level, a combination of levels
never run, a config missing seeds the others have, a (config, seed) run twice) is named, so the report
can say plainly what the numbers rest on.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import pandas as pd

from study.analysis.stats.intervals import level_column
from study.core.errors import InputError
from study.spec.analyze_spec import AnalyzeSpec

SHOWN = 5  # names a finding lists before "+N more"
MAX_CELLS = 100_000  # combinations of levels enumerated to find the missing ones


@dataclass
class Design:
    """Which runs became trials, which were left out and why, and what the design lacks."""

    runs: int  # runs in the experiment
    excluded: pd.DataFrame  # run, run_id, reason
    levels: dict[str, list[str]]  # every named factor: its levels in the used runs, reference first
    seed_source: str  # where the seeds were found: "param", "tag" or "param or tag"
    missing_cells: pd.DataFrame = field(default_factory=pd.DataFrame)  # combinations of levels never run
    cells: int = 0  # combinations of the varied factors' levels
    configs: int = 0  # of those, how many have a run
    unbalanced: pd.DataFrame = field(default_factory=pd.DataFrame)  # config, seeds, missing_seeds

    @property
    def varied(self) -> list[str]:
        return [f for f, levels in self.levels.items() if len(levels) > 1]

    @property
    def one_level(self) -> list[str]:
        return [f for f, levels in self.levels.items() if len(levels) == 1]

    @property
    def complete(self) -> bool:
        return bool(self.varied) and self.configs == self.cells

    def findings(self) -> list[str]:
        """One plain line per gap, naming what is affected and what it means for the analysis."""
        lines = []
        for reason, group in self.excluded.groupby("reason", sort=False):
            lines.append(f"{len(group)} run(s) left out, {reason}: {listed(group['run'].tolist())}")
        for factor in self.one_level:
            lines.append(f"factor `{factor}` has one level (`{self.levels[factor][0]}`) in every run used: "
                         "nothing to compare, so it has no effect row")
        if not self.varied:
            lines.append("no factor has two or more levels: no effect can be estimated")
        if self.varied and not self.complete:
            names = [", ".join(f"{f}={v}" for f, v in row.items()) for _, row in self.missing_cells.iterrows()]
            lines.append(f"{self.cells - self.configs} of the {self.cells} combinations of the factors' levels have "
                         f"no run{f' ({listed(names)})' if names else ''}: no complete factorial, so no variance "
                         "decomposition; each effect uses the blocks where both of its levels ran")
        if len(self.unbalanced):
            names = [f"{row['config']} lacks seed(s) {row['missing_seeds']}" for _, row in self.unbalanced.iterrows()]
            lines.append(f"{len(self.unbalanced)} config(s) lack seeds that other configs have ({listed(names)}): "
                         "effects pair runs by seed, so their unmatched runs are counted as `unpaired`; the "
                         "decomposition weighs config means equally")
        return lines


def listed(names: list[str]) -> str:
    shown = "; ".join(f"`{n}`" for n in names[:SHOWN])
    return shown + (f"; +{len(names) - SHOWN} more" if len(names) > SHOWN else "")


def tidy_runs(runs: pd.DataFrame, spec: AnalyzeSpec) -> tuple[pd.DataFrame, Design]:
    """The tidy trial frame (run_id, run, status, seed, level_<factor>, `outcome`, trial_key) of the runs that
    can be trials, and the Design; InputError when nothing can be estimated. A factor's values are only in its
    level column, so no param name can collide with a column the analysis adds."""
    where = f"experiment {spec.experiment!r}"
    if runs.empty:
        raise InputError(f"--experiment: {where} has no runs")
    params = sorted(c.removeprefix("params.") for c in runs if c.startswith("params."))
    for factor in spec.factors:
        if f"params.{factor}" not in runs or runs[f"params.{factor}"].isna().all():
            raise InputError(f"--factors: no run of {where} has a param {factor!r}; its params: "
                             f"{', '.join(params) or 'none'}")
    metric = f"metrics.{spec.metric}"
    if metric not in runs or runs[metric].isna().all():
        metrics = sorted(c.removeprefix("metrics.") for c in runs if c.startswith("metrics."))
        raise InputError(f"--metric: no run of {where} logged a metric {spec.metric!r}; its metrics: "
                         f"{', '.join(metrics) or 'none'}")
    seeds, seed_source = _seeds(runs, spec, params)
    names = runs["tags.mlflow.runName"].fillna(runs["run_id"]) if "tags.mlflow.runName" in runs else runs["run_id"]
    reasons = pd.Series("", index=runs.index, dtype=object)
    values = pd.to_numeric(runs[metric], errors="coerce")
    checks = [(runs["status"] != "FINISHED", lambda i: f"MLflow status {runs.at[i, 'status']} (not FINISHED)"),
              (values.isna(), lambda i: f"no `{spec.metric}` logged"),
              (~values.map(lambda v: math.isfinite(v) if v == v else True), lambda i: f"`{spec.metric}` not finite")]
    checks += [(runs[f"params.{f}"].isna(), lambda i, f=f: f"no param `{f}`") for f in spec.factors]
    checks.append((seeds.isna(), lambda i: f"no seed (param or tag `{spec.seed_param}`)"))
    for mask, reason in checks:
        for i in runs.index[mask & reasons.eq("")]:
            reasons[i] = reason(i)
    kept = runs[reasons.eq("")]
    tidy = pd.DataFrame({"run_id": kept["run_id"], "run": names[kept.index], "status": "completed",
                         "seed": _typed(seeds[kept.index])})
    for factor in spec.factors:
        tidy[level_column(factor)] = kept[f"params.{factor}"].astype(str)
    tidy["outcome"] = values[kept.index].astype(float)
    tidy["trial_key"] = [",".join(f"{f}={row[level_column(f)]}" for f in spec.factors) + f",seed={row['seed']}"
                         for _, row in tidy.iterrows()]
    later = tidy.duplicated("trial_key", keep="last")  # runs are oldest first: the latest run of a key counts
    for i in tidy.index[later]:
        reasons[i] = f"a later run has the same config and seed (`{tidy.at[i, 'trial_key']}`)"
    tidy = tidy[~later].reset_index(drop=True)
    excluded = pd.DataFrame({"run": names, "run_id": runs["run_id"], "reason": reasons})[reasons.ne("")]
    if tidy.empty:
        raise InputError(f"--metric: no run of {where} can be used: " + "; ".join(
            f"{len(g)} with {r}" for r, g in excluded.groupby("reason", sort=False)))
    levels = {f: _ordered(tidy[level_column(f)], spec.reference.get(f), f) for f in spec.factors}
    design = Design(runs=len(runs), excluded=excluded.reset_index(drop=True), levels=levels, seed_source=seed_source)
    _gaps(tidy, design)
    return tidy, design


def _seeds(runs: pd.DataFrame, spec: AnalyzeSpec, params: list[str]) -> tuple[pd.Series, str]:
    """Each run's seed: the param, else the tag, of that name."""
    param, tag = f"params.{spec.seed_param}", f"tags.{spec.seed_param}"
    if param not in runs and tag not in runs:
        raise InputError(f"--seed-param: {spec.seed_param!r} is neither a param nor a tag of any run of experiment "
                         f"{spec.experiment!r}; its params: {', '.join(params) or 'none'}")
    from_param = runs[param] if param in runs else pd.Series(None, index=runs.index, dtype=object)
    from_tag = runs[tag] if tag in runs else pd.Series(None, index=runs.index, dtype=object)
    source = "param" if from_tag.isna().all() else "tag" if from_param.isna().all() else "param or tag"
    return from_param.where(from_param.notna(), from_tag), source


def _typed(values: pd.Series) -> pd.Series:
    """Seeds as integers when every one is an integer (MLflow keeps text), else as they were written."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and (numbers == numbers.round()).all():
        return numbers.astype("int64")
    return values.astype(str)


def _ordered(labels: pd.Series, reference: str | None, factor: str) -> list[str]:
    """A factor's levels, `reference` first: numerically when every label is a number, False before True,
    else in the order the runs logged them (oldest first: a script's loop order)."""
    found = list(dict.fromkeys(labels))  # `labels` are in run order
    numbers = pd.to_numeric(pd.Series(found), errors="coerce")
    if numbers.notna().all():
        found = [label for _, label in sorted(zip(numbers, found))]
    elif set(found) <= {"False", "True"}:
        found = sorted(found)
    if reference is None:
        return found
    match = [lv for lv in found if lv == reference or _same_number(lv, reference)]
    if not match:
        raise InputError(f"--reference: {factor}={reference}: the levels of {factor!r} are {', '.join(found)}")
    return match[:1] + [lv for lv in found if lv != match[0]]


def _same_number(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-12)
    except ValueError:
        return False


def _gaps(tidy: pd.DataFrame, design: Design) -> None:
    """Missing combinations of the varied factors' levels, and configs missing seeds the others have."""
    varied = design.varied
    design.cells = math.prod(len(design.levels[f]) for f in varied) if varied else 0
    columns = [level_column(f) for f in varied]
    present = set(map(tuple, tidy[columns].drop_duplicates().to_numpy().tolist())) if varied else set()
    design.configs = len(present)
    if varied and design.cells <= MAX_CELLS:
        missing = [combo for combo in itertools.product(*(design.levels[f] for f in varied)) if combo not in present]
        design.missing_cells = pd.DataFrame(missing, columns=varied)
    factors = varied or list(design.levels)  # a one-level factor splits no config
    all_seeds = set(tidy["seed"])
    rows = []
    for key, group in tidy.groupby([level_column(f) for f in factors], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        lacking = sorted(all_seeds - set(group["seed"]), key=str)
        if lacking:
            rows.append({"config": ", ".join(f"{f}={v}" for f, v in zip(factors, key)), "seeds": len(group),
                         "missing_seeds": ", ".join(map(str, lacking))})
    design.unbalanced = pd.DataFrame(rows, columns=["config", "seeds", "missing_seeds"])
