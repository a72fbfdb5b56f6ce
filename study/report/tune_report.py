"""Write reports/<tune study>/README.md + figures/*.png + tables/*.csv: the SECTIONS below, in order.

Trials, their states and intermediate values come from the Optuna storage (the
source of truth for the search, read through study.tuning.search); the retrained base/tuned runs come from MLflow
through study.analysis, like every ablation report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.queue.trial_queue import TrialQueue
from study.report.format import without_machine_paths
from study.report.section import Section, TuneContext
from study.report.sections.tuning import (HistorySection, ImportancesSection, ParamMapSection, PruningSection,
                                          RetrainSection)
from study.report.sections.tuning_about import (BestTrialSection, NoTrialsSection, TopTrialsSection,
                                                TuneHeaderSection, TuneSpecSection)
from study.spec.tune_spec import TuneSpec
from study.tracking.store import configure
from study.tuning.search import Search

SECTIONS: list[Section[TuneContext]] = [
    TuneHeaderSection(),
    NoTrialsSection(),
    BestTrialSection(),
    TopTrialsSection(),
    HistorySection(),
    ImportancesSection(),
    ParamMapSection(),
    PruningSection(),
    RetrainSection(),
    TuneSpecSection(),
]


def write_tune_report(spec: TuneSpec, queue: TrialQueue, tracking_uri: str | None = None,
                      out_root: Path = Path("reports")) -> Path:
    configure(tracking_uri)
    out = out_root / spec.name
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    search = Search.load(queue, spec.name)
    trials = search.trials_table(spec) if search is not None else pd.DataFrame()
    curves = search.intermediate_values() if search is not None and not trials.empty else pd.DataFrame()
    ctx = TuneContext(spec, out, queue.url, search, trials, curves)
    readme = out / "README.md"
    readme.write_text(without_machine_paths("\n".join(text for section in SECTIONS if (text := section.render(ctx)))))
    return readme
