"""`python -m study analyze` on runs that other code logged to a real MLflow SQLite store: a plain script's
factorial with a planted effect, an Optuna grid logged by optuna-integration's MLflowCallback, a broken
design (each gap named, no traceback), and bad input (one line, exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from study.cli.analyze import analyze as analyze_command
from study.cli.parser import build_parser
from tests.conftest import ROOT, run_cli

SCRIPTS = ROOT / "tests" / "scripts"


def log(script: str, home: Path, *args: str) -> None:
    """Run a logging script in its own process with no PYTHONPATH: it cannot import `study`."""
    done = subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True,
                          timeout=300, cwd=home, env={"PATH": "/usr/bin:/bin", "HOME": str(home)})
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    log("log_factorial.py", root, uri, "planted")
    log("log_factorial.py", root, uri, "messy", "--messy")
    log("log_optuna.py", root, uri, "optuna-grid")
    return root, uri


def analyze(store, *args: str) -> subprocess.CompletedProcess:
    """`python -m study analyze ...` in a fresh process, as a user runs it."""
    root, uri = store
    return run_cli("analyze", "--tracking-uri", uri, "--reports-dir", str(root / "reports"), *args, cwd=root)


def analyze_here(store, capsys, *args: str) -> subprocess.CompletedProcess:
    """The same command in this process (its startup, imports included, is the slow part of a CLI call)."""
    root, uri = store
    argv = ["analyze", "--tracking-uri", uri, "--reports-dir", str(root / "reports"), *args]
    code = analyze_command(build_parser().parse_args(argv))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


def effect(out, factor: str, level: str) -> pd.Series:
    table = pd.read_csv(out / "tables" / "effects.csv", dtype={"level": str, "reference": str})
    return table[(table["factor"] == factor) & (table["level"] == level)].iloc[0]


def test_scripts_that_log_the_runs_do_not_use_study():
    for script in ("log_factorial.py", "log_optuna.py"):
        text = (SCRIPTS / script).read_text()
        assert "import study" not in text and "from study" not in text


@pytest.mark.integration
def test_planted_effect_is_covered_and_null_factor_covers_zero(store):
    done = analyze(store, "--experiment", "planted", "--factors", "a,b,c", "--seed-param", "seed",
                   "--metric", "val_accuracy", "--higher-is-better")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    out = store[0] / "reports" / "planted"
    a, b = effect(out, "a", "hi"), effect(out, "b", "y")
    assert a["reference"] == "lo" and a["blocks"] == 4 and a["pairs"] == 20  # the script's loop order: lo first
    assert a["ci_low"] <= 0.03 <= a["ci_high"] and a["ci_low"] > 0.015  # +3 pp planted, and told from zero
    assert b["ci_low"] <= 0.0 <= b["ci_high"]  # b does nothing
    assert "  a: hi vs lo: +" in done.stdout and "over 4 blocks (higher)" in done.stdout
    readme = (out / "README.md").read_text()
    for heading in ("## What this experiment can estimate", "## What to pick",
                    "## Where the answer depends on the other choices", "## Effects of each factor",
                    "## Interactions and importance", "## Leaderboard", "## How the numbers are computed"):
        assert heading in readme, heading
    top = pd.read_csv(out / "tables" / "top_group.csv")  # a=hi helps by 3 pp: settled; b does nothing: a tie
    members = top[top["in_top_group"]]
    assert set(members["a"]) == {"hi"} and set(members["b"]) == {"x", "y"} and len(members) >= 2
    for lesson_only in ("claims", "Ablation path", "lesson", "## Runs that did not learn"):
        assert lesson_only not in readme, lesson_only
    assert "| a        | hi vs lo" in readme and "Δ val_accuracy [95% CI]" in readme
    assert "Every run was used, and the design is a complete, balanced factorial of 8 configs" in readme
    for name in ("forest", "importance", "curves_a"):  # curves: the script logged a per-step history
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000, name
    for name in ("effects", "leaderboard"):
        assert "\\toprule" in (out / "tables" / f"{name}.tex").read_text()
    trials = pd.read_csv(out / "tables" / "trials.csv")
    assert len(trials) == 40 and "val_accuracy" in trials and "a" in trials


@pytest.mark.integration
def test_optuna_grid_logged_by_the_mlflow_callback_with_the_seed_as_a_tag(store, capsys):
    done = analyze_here(store, capsys, "--experiment", "optuna-grid", "--factors", "lr,optimizer", "--metric",
                        "val_accuracy", "--reference", "optimizer=sgd")
    assert done.returncode == 0, done.stderr[-3000:]
    out = store[0] / "reports" / "optuna-grid"
    adam = effect(out, "optimizer", "adam")
    assert adam["reference"] == "sgd" and adam["blocks"] == 3 and adam["ci_low"] <= 0.05 <= adam["ci_high"]
    for level in ("0.01", "0.1"):  # lr does nothing; its levels are numbers, so 0.001 is the reference
        row = effect(out, "lr", level)
        assert row["reference"] == "0.001" and row["ci_low"] <= 0.0 <= row["ci_high"]
    readme = (out / "README.md").read_text()
    assert "Seeds: the tag `seed`; 4 distinct, 4 per config" in readme
    assert "Per-step history of `val_accuracy`: none" in readme


@pytest.mark.integration
def test_a_broken_design_names_each_gap(store, capsys):
    done = analyze_here(store, capsys, "--experiment", "messy", "--factors", "a,b,c,d", "--metric",
                        "val_accuracy", "--chance", "0.5")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    readme = (store[0] / "reports" / "messy" / "README.md").read_text()
    for text in ("MLflow status FAILED (not FINISHED): `crashed-1`", "no `val_accuracy` logged: `no-metric`",
                 "no param `c`: `no-c`", "no seed (param or tag `seed`): `no-seed`",
                 "a later run has the same config and seed (`a=lo,b=y,c=v,d=same,seed=2`)",
                 "factor `d` has one level (`same`)", "1 of the 8 combinations of the factors' levels have no run "
                 "(`a=hi, b=y, c=v`)", "`a=lo, b=x, c=u lacks seed(s) 4`"):
        assert text in done.stdout and text in readme, text
    assert "Variance decomposition: not computed" in readme and "**0 of 34 runs did not learn**" in readme
    excluded = pd.read_csv(store[0] / "reports" / "messy" / "tables" / "excluded_runs.csv")
    assert sorted(excluded["run"]) == ["crashed-1", "lo-y-v-s2", "no-c", "no-metric", "no-seed"]
    a = effect(store[0] / "reports" / "messy", "a", "hi")
    assert a["blocks"] == 3 and a["unpaired"] > 0 and a["ci_low"] <= 0.03 <= a["ci_high"]


@pytest.mark.integration
def test_a_loss_is_analysed_as_its_negative_and_labelled(store, capsys):
    done = analyze_here(store, capsys, "--experiment", "planted", "--factors", "a,b,c", "--metric", "val_loss",
                        "--lower-is-better", "--chance", "2.3", "--name", "planted-loss")
    assert done.returncode == 0, done.stderr[-3000:]
    out = store[0] / "reports" / "planted-loss"
    a = effect(out, "a", "hi")
    assert a["ci_low"] <= 0.06 <= a["ci_high"] and a["verdict"] == "higher"  # loss = 2 (1 - acc): 6 points lower
    readme = (out / "README.md").read_text()
    assert "the analysis reads its negative, shown as `−val_loss`" in readme and "Δ −val_loss [95% CI]" in readme
    assert "`val_loss` at or above 2.2500" in readme
    board = readme[readme.index("## Leaderboard"):]
    assert "| val_loss [95% CI]" in board and "lowest `val_loss` first" in board
    assert "| 1      | hi  | y   | v   | 5       | 0.3" in board  # the loss itself, lowest first


@pytest.mark.integration
@pytest.mark.parametrize("args, line", [
    (("--experiment", "nope", "--factors", "a", "--metric", "val_accuracy"),
     "error: --experiment: no experiment named 'nope' in this tracking store; experiments there: "),
    (("--experiment", "planted", "--factors", "a,zz", "--metric", "val_accuracy"),
     "error: --factors: no run of experiment 'planted' has a param 'zz'; its params: a, b, c, lr, seed"),
    (("--experiment", "planted", "--factors", "a", "--metric", "val_acc"),
     "error: --metric: no run of experiment 'planted' logged a metric 'val_acc'; its metrics: val_accuracy, val_loss"),
    (("--experiment", "planted", "--factors", "a", "--metric", "val_accuracy", "--seed-param", "s"),
     "error: --seed-param: 's' is neither a param nor a tag of any run of experiment 'planted'"),
])
def test_bad_input_is_one_line_and_exit_2(store, capsys, args, line):
    done = analyze_here(store, capsys, *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(line) and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.integration
def test_spec_file_same_keys_and_unknown_key(store, capsys):
    root, uri = store
    good = root / "planted.yaml"
    good.write_text("experiment: planted\nfactors: [a, b, c]\nseed-param: seed\nmetric: val_accuracy\n"
                    "name: planted-from-file\nreference: {a: hi}\n")
    done = analyze_here(store, capsys, str(good))
    assert done.returncode == 0, done.stderr[-3000:]
    assert effect(root / "reports" / "planted-from-file", "a", "lo")["reference"] == "hi"
    bad = root / "bad.yaml"
    bad.write_text("experiment: planted\nfactors: a\nmetric: val_accuracy\nfactor: b\n")
    done = analyze_here(store, capsys, str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {bad}: factor: unknown key; allowed keys: experiment, factors, seed_param, "
                                   "metric, higher_is_better, lower_is_better, chance, margin, reference, "
                                   "tracking_uri, reports_dir, name")
