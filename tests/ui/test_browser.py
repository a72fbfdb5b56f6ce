"""A person's browser on `make ui` (MLflow) and `make dashboard` (optuna-dashboard), on a tiny real study.

Headless Chromium clicks through the pages as a person would and saves a screenshot of each
(test-artifacts/screenshots/, printed at the end of the run). What is checked is what the
person sees: the experiment opens on its runs (not MLflow's GenAI overview), the invocation's
run holds its trials, each trial shows its data, its val_accuracy chart over epochs, and the
invocation's run leads to the study's report; the dashboard names the objective.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from tests.conftest import ROOT, run_cli, write_spec
from tests.ui.browser import by_text, chromium, page_text, screenshot, wait_for_http, wait_until

STUDY = """
name: browse
epochs: 3
validation: holdout
train_subset: 300
seeds: [0]
base: {units: 16}
factors:
  dropout: [0.0, 0.2]
"""
TUNE = """
name: browse_tune
epochs: 2
train_subset: 300
base: {hidden_layers: 1, units: 16, optimizer: sgd, learning_rate: 0.01, dropout: 0.0}
search_space:
  dropout: {low: 0.0, high: 0.5}
n_trials: 3
sampler: {name: random, seed: 0}
pruner: {name: none}
"""
EXPAND = "//button[contains(@data-component-id, 'runnamecellrenderer')]"  # the +/- beside a parent run's name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def studied(tmp_path_factory, data_dir) -> Path:
    """A tiny ablation (with its report) and a tiny tuning study, in one project directory's stores."""
    work = tmp_path_factory.mktemp("browse")
    stores = ["--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", "--storage", f"sqlite:///{work / 'optuna.db'}",
              "--data-dir", str(data_dir), "--reports-dir", str(work / "reports")]
    ran = run_cli("run", str(write_spec(work / "browse.yaml", STUDY)), *stores, cwd=work)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    tuned = run_cli("tune", str(write_spec(work / "browse_tune.yaml", TUNE)), *stores, "--no-retrain", "--no-report",
                    cwd=work)
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    return work


def server(command: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.mark.integration
@pytest.mark.slow
def test_mlflow_ui_shows_the_study_as_a_person_browses_it(studied):
    uri = f"sqlite:///{studied / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name("browse")
    runs = mlflow.search_runs(experiment_ids=[experiment.experiment_id], output_format="list")
    parent = next(r for r in runs if r.data.tags["study_role"] == "study")
    trial = next(r for r in runs if r.data.tags["study_role"] == "trial")
    port = free_port()
    # `make ui` runs exactly this (test_ui.py checks the recipe).
    ui = server([sys.executable, "-m", "study", "ui", "--tracking-uri", uri, "--port", str(port)], studied)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", lambda: ui.poll() is None)
        with chromium() as browser:
            # A person opens the UI, goes to Experiments and clicks the study.
            browser.get(f"{base}/#/experiments")
            wait_until("the study in the experiments list", lambda: by_text(browser, "browse", "a", exact=True))[0].click()
            wait_until("the runs table", lambda: "matching runs" in page_text(browser))
            assert "/runs" in browser.current_url, browser.current_url  # its training runs, not the GenAI overview
            assert "Token Usage" not in page_text(browser)
            wait_until("the invocation's run", lambda: by_text(browser, parent.info.run_name))
            screenshot(browser, "mlflow-1-experiment-opens-on-runs")

            # The invocation's run holds the trials: expand it; it and each trial show the dataset.
            wait_until("the expand button", lambda: browser.find_elements("xpath", EXPAND))[0].click()
            for name in ("dropout=0.0 seed=0", "dropout=0.2 seed=0"):
                wait_until(f"child run {name}", lambda name=name: by_text(browser, name))
            datasets = wait_until("the Dataset column", lambda: by_text(browser, "mnist ("))
            assert len(datasets) == 3, [d.text for d in datasets]  # the invocation's row and its two trials
            assert "Training" in page_text(browser)
            screenshot(browser, "mlflow-2-parent-and-child-runs-with-datasets")

            # A trial's metrics: val_accuracy over its 3 epochs.
            browser.get(f"{base}/#/experiments/{experiment.experiment_id}/runs/{trial.info.run_id}/model-metrics")
            search = wait_until("the chart search box", lambda: browser.find_elements(
                "xpath", "//input[contains(@placeholder, 'Search metric charts')]"))[0]
            search.send_keys("val_accuracy")

            def chart():
                """The card of the chart titled val_accuracy, once its plot is drawn (React renders it late)."""
                titles = [e for e in browser.find_elements("xpath", "//*[text()='val_accuracy']") if e.is_displayed()]
                return titles and titles[0].find_element(
                    "xpath", "./ancestor::*[.//*[name()='svg' and contains(@class, 'main-svg')]][1]")

            card = wait_until("the val_accuracy chart", chart)
            wait_until("the chart's epoch axis", lambda: "Step" in card.text and "(val_accuracy)" in card.text)

            def ticks() -> set[str]:
                return {t.text for t in card.find_elements("xpath", ".//*[name()='g' and contains(@class, 'xtick')]")}

            wait_until(f"epochs 0, 1, 2 on the x axis (ticks so far: {ticks()})", lambda: {"0", "1", "2"} <= ticks())
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", card)
            screenshot(browser, "mlflow-3-trial-val-accuracy-over-epochs")

            # The invocation's run leads to the report: artifacts report/README.md, rendered.
            browser.get(f"{base}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}/artifacts")
            wait_until("the report folder", lambda: by_text(browser, "report"))[0].click()
            wait_until("figures/ in the report", lambda: by_text(browser, "figures"))
            wait_until("README.md in the report", lambda: by_text(browser, "README.md"))[0].click()
            wait_until("the rendered report", lambda: by_text(browser, "Summary", "h2") and by_text(browser, "Study"))
            assert "Trials: 2 of 2 finished" in page_text(browser)
            screenshot(browser, "mlflow-4-parent-run-artifacts-report")

            # And its summary metrics.
            browser.get(f"{base}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}")
            wait_until("the parent's summary metrics",
                       lambda: by_text(browser, "best_val_accuracy") and by_text(browser, "trials_done"))
            wait_until("the description pointing to the report", lambda: by_text(browser, "report/README.md"))
            screenshot(browser, "mlflow-5-parent-run-summary-metrics")
    finally:
        stop(ui)


@pytest.mark.integration
@pytest.mark.slow
def test_dashboard_shows_the_tuning_study_and_its_trials(studied):
    port = free_port()
    storage = f"sqlite:///{studied / 'optuna.db'}"
    recipe = subprocess.run(["make", "-s", "-n", "dashboard", f"STORAGE={storage}", f"DASHBOARD_PORT={port}"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert recipe.endswith(f"optuna-dashboard {storage} --host 127.0.0.1 --port {port}"), recipe
    dashboard = server([str(Path(sys.executable).parent / "optuna-dashboard"), storage, "--host", "127.0.0.1",
                        "--port", str(port)], studied)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/api/studies", lambda: dashboard.poll() is None)
        with chromium() as browser:
            browser.get(f"{base}/dashboard/")
            wait_until("the tuning study in the list", lambda: by_text(browser, "browse_tune"))
            assert by_text(browser, "1. browse", exact=True)  # the ablation's queue is an Optuna study too
            screenshot(browser, "dashboard-1-studies")

            by_text(browser, "browse_tune")[0].click()
            wait_until("the history plot named after the metric", lambda: browser.find_elements(
                "xpath", "//*[name()='text' and contains(@class, 'ytitle') and .='val_accuracy']"))
            assert not browser.find_elements("xpath", "//*[name()='text' and contains(., 'Objective 0')]")
            screenshot(browser, "dashboard-2-study-history-axis-val_accuracy")

            browser.find_element("xpath", "//li[@title='Trials (List)']").click()
            wait_until("the trials list", lambda: "3 Trials" in page_text(browser))
            for number in range(3):
                assert by_text(browser, f"Trial {number}"), number
            wait_until("a trial's MLflow run id", lambda: "mlflow_run_id" in page_text(browser))
            screenshot(browser, "dashboard-3-trials")
    finally:
        stop(dashboard)
