"""The claims table's format: what a companion's claims (study.analysis.companion) are read as.

A claim is a statement a companion brings (the lesson's "ReLU trains deep nets better than sigmoid"), tested by
a contrast of the study's trials. The core reads a claims table without knowing whose claims they are: the
adaptive design turns its accuracy contrasts into targets (study.analysis.adaptive_targets), the report's
findings count its verdicts."""

from __future__ import annotations

from study.analysis.gradients import GRADIENT_RATIO
from study.analysis.stats.failures import FAILED

PRIMARY = "final_val_accuracy"
MEASURES = {PRIMARY: "val accuracy", "test_accuracy": "test accuracy", FAILED: "share of trials that do not learn",
            GRADIENT_RATIO: "log10 gradient norm, first / last hidden layer, after epoch 1 (mechanism)"}
COLUMNS = ["claim", "scope", "contrast", "condition", "measure", "diff", "ci_low", "ci_high", "unit", "n", "verdict",
           "moderator", "holds", "reverses", "why"]
NOT_TESTABLE = "not testable here"
