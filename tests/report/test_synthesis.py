"""The lesson's synthesis across studies: verdicts side by side, disagreements explained, the first model."""

from __future__ import annotations

import shutil

import pandas as pd

from study.lesson.studies import discover
from study.lesson.synthesis import first_model_rows, synthesis, write_synthesis
from tests.conftest import ROOT, run_cli

COLUMNS = ["claim", "scope", "contrast", "condition", "measure", "diff", "ci_low", "ci_high", "unit", "n", "verdict",
           "moderator", "holds", "reverses", "why"]
WARMUP = "Warm-up then cosine decay helps"


def claim(scope: str, verdict: str, diff: float, why: str = "", condition: str = "") -> dict:
    return dict(zip(COLUMNS, [WARMUP, scope, "schedule: warmup_cosine_corrected vs constant", condition,
                              "val accuracy", diff, diff - 0.004, diff + 0.004, "blocks", 8, verdict, "", "", "", why]))


def make_study(root, name: str, rows: list[dict], epoch_values: dict | None = None) -> None:
    shutil.copy(ROOT / "ablations" / f"{name}.yaml", root / "ablations" / f"{name}.yaml")
    tables = root / "reports" / name / "tables"
    tables.mkdir(parents=True)
    (root / "reports" / name / "README.md").write_text(f"# {name}\n")
    if rows:
        pd.DataFrame(rows, columns=COLUMNS).to_csv(tables / "claims.csv", index=False)
    if epoch_values:
        pd.DataFrame([{"run_id": f"r{seed}", "metric": metric, "epoch": epoch - 1, "value": value}
                      for (epoch, metric), values in epoch_values.items() for seed, value in enumerate(values)]
                     ).to_csv(tables / "epoch_metrics.csv", index=False)


def studies(tmp_path, first_epoch_accuracy: list[float], first_epoch_loss: tuple = (0.96, 0.95, 0.98, 0.93, 1.0)):
    (tmp_path / "ablations").mkdir()
    make_study(tmp_path, "lesson_grid", [claim("lesson's condition", "inconclusive", -0.002),
                                         claim("whole grid", "contradicted", -0.018, "5 epochs, 2 of them warm-up")])
    make_study(tmp_path, "lesson_regularisation", [claim("lesson's condition", "supported", 0.01,
                                                         condition="dropout=0.0"),
                                                   claim("whole grid", "supported", 0.012)])
    make_study(tmp_path, "lesson_baseline", [], {
        (1, "accuracy"): first_epoch_accuracy, (1, "loss"): list(first_epoch_loss),
        (5, "accuracy"): [0.944, 0.946, 0.941, 0.9475, 0.943], (5, "loss"): [0.18, 0.19, 0.185, 0.2, 0.183]})
    return discover(tmp_path / "reports", tmp_path / "ablations")


def test_disagreeing_studies_are_named_with_what_differs(tmp_path):
    found = studies(tmp_path, [0.69, 0.70, 0.68, 0.70, 0.69])
    assert [s.name for s in found] == ["lesson_baseline", "lesson_grid", "lesson_regularisation"]
    text, rows = synthesis(found)
    line = next(line for line in text.splitlines() if line.startswith(f"- **{WARMUP}.**"))
    assert "The studies disagree" in line and "**contradicted** in lesson_grid" in line
    assert "**supported** in lesson_regularisation" in line
    assert "5 epochs, 4x32, 50,000 training images" in line and "30 epochs, 4x256, 5,000 training images" in line
    assert "lesson_grid: 5 epochs, 2 of them warm-up" in line
    assert len(rows) == 4 and set(rows["study"]) == {"lesson_grid", "lesson_regularisation"}


def test_the_first_model_is_reproduced_only_within_our_seeds(tmp_path):
    found = studies(tmp_path, [0.69, 0.70, 0.68, 0.70, 0.69])
    table = first_model_rows(next(s for s in found if s.name == "lesson_baseline")).set_index(["epoch", "metric"])
    assert not table.loc[(1, "accuracy"), "reproduced"]  # the lesson's 0.6453 lies below all five seeds
    assert table.loc[(1, "accuracy"), "z"] < -4
    assert table.loc[(5, "accuracy"), "reproduced"]  # 0.9474 lies within [0.941, 0.9475]
    text, _ = synthesis(found)
    assert "**Not reproduced at epoch 1**" in text and "**unexplained**" in text


def test_the_command_writes_reports_lesson(tmp_path):
    studies(tmp_path, [0.64, 0.70, 0.68, 0.70, 0.69], (1.2, 0.95, 0.98, 0.93, 1.0))  # one seed beyond the lesson
    done = run_cli("synthesize", "--reports-dir", str(tmp_path / "reports"), "--specs-dir",
                   str(tmp_path / "ablations"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    readme = (tmp_path / "reports" / "lesson" / "README.md").read_text()
    assert "## One line per claim" in readme and "## The lesson's first model: reproduced?" in readme
    assert "lies within the range of our 5 seeds" in readme
    assert (tmp_path / "reports" / "lesson" / "tables" / "claims_by_study.csv").is_file()
    empty = run_cli("synthesize", "--reports-dir", str(tmp_path / "nothing"), cwd=tmp_path)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1 and "no lesson study has a report" in empty.stderr


def test_write_synthesis_keeps_no_machine_paths(tmp_path):
    found = studies(tmp_path, [0.69, 0.70, 0.68, 0.70, 0.69])
    readme = write_synthesis(found, tmp_path / "reports" / "lesson")
    assert str(tmp_path) not in readme.read_text()
