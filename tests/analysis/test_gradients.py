"""The probe metrics as tables and a figure (study.analysis.gradients, lesson_figures.gradient_norms_by_layer),
on a planted long frame whose every number is known."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from study.analysis.gradients import gradient_table, layer_key, layer_profile, probe_curves
from study.lesson.reference import LESSON_CONDITION
from study.report.figures.gradient_figures import gradient_norms_by_layer
from study.tracking.store import configure

LAYERS = ["dense_0", "dense_1", "dense_2", "dense_3", "softmax"]
EPOCHS = 3


def planted() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials of the lesson's condition (SGD, Xavier/He, no batch norm) and outside it (N(0, 1); Adam), 3 seeds.
    sigmoid: gradient 0.01 * 4^layer (vanishing towards the input), relu: 0.1 everywhere; x (1 + seed / 10);
    x (epoch + 1). Outside the condition every value is 1000, so any leak shows."""
    trials, rows = [], []
    for activation in ("sigmoid", "relu"):
        for init, optimizer in (("xavier", "sgd"), ("he", "sgd"), ("normal", "sgd"), ("he", "adam")):
            for seed in range(3):
                run_id = f"{activation}-{init}-{optimizer}-{seed}"
                trials.append({"run_id": run_id, "activation": activation, "init": init, "optimizer": optimizer,
                               "batch_norm": False, "seed": seed})
                inside = init != "normal" and optimizer == "sgd"
                for epoch in range(EPOCHS):
                    for i, layer in enumerate(LAYERS):
                        base = 0.01 * 4 ** i if activation == "sigmoid" else 0.1
                        value = base * (1 + seed / 10) * (epoch + 1) if inside else 1000.0
                        rows.append((run_id, f"grad_norm/{layer}", epoch, value))
                        if layer != "softmax":
                            share = (0.5 - 0.1 * i if activation == "sigmoid" else 0.0) / (epoch + 1)
                            rows.append((run_id, f"saturated/{layer}", epoch, share))
                    rows.append((run_id, "val_accuracy", epoch, 0.9))
    return pd.DataFrame(rows, columns=["run_id", "metric", "epoch", "value"]), pd.DataFrame(trials)


def test_gradient_table_per_trial():
    curves, _ = planted()
    table = gradient_table(curves).set_index("run_id")
    sigmoid, relu = table.loc["sigmoid-xavier-sgd-0"], table.loc["relu-he-sgd-1"]
    assert sigmoid["first_layer"] == "dense_0" and sigmoid["last_hidden_layer"] == "dense_3"  # not softmax
    assert sigmoid["epochs"] == EPOCHS
    assert sigmoid["grad_first_epoch1"] == pytest.approx(0.01)
    assert sigmoid["grad_first_last_epoch"] == pytest.approx(0.03)
    assert sigmoid["grad_ratio_epoch1"] == pytest.approx(1 / 64)
    assert sigmoid["grad_ratio_last_epoch"] == pytest.approx(1 / 64)
    assert relu["grad_first_epoch1"] == pytest.approx(0.11) and relu["grad_ratio_epoch1"] == pytest.approx(1.0)
    assert [sigmoid[f"saturated_{layer}"] for layer in LAYERS[:-1]] == pytest.approx([0.5, 0.4, 0.3, 0.2])
    assert relu["saturated_dense_0"] == 0.0
    assert len(table) == 24


def test_layer_profile_keeps_the_lesson_condition_and_bands_seeds():
    curves, frame = planted()
    profile = layer_profile(curves, frame, condition=LESSON_CONDITION)
    assert (profile["mean"] < 1000).all(), "trials outside the condition leaked in"
    assert sorted(profile["epoch"].unique()) == [0, EPOCHS - 1]
    assert set(profile["seeds"]) == {3}
    first = profile[(profile["level"] == "sigmoid") & (profile["epoch"] == 0) & (profile["layer"] == "dense_0")]
    assert first[["mean", "min", "max"]].iloc[0].tolist() == pytest.approx([0.011, 0.01, 0.012])
    out = profile[(profile["level"] == "relu") & (profile["layer"] == "softmax")]
    assert set(out["layer_index"]) == {4}
    saturated = layer_profile(curves, frame, condition=LESSON_CONDITION, prefix="saturated/", epochs=[0])
    assert saturated[saturated["level"] == "sigmoid"]["mean"].tolist() == pytest.approx([0.5, 0.4, 0.3, 0.2])


def test_layers_sort_by_their_index_and_the_output_last():
    assert sorted(["softmax", "dense_10", "dense_2", "dense_0"], key=layer_key) == \
        ["dense_0", "dense_2", "dense_10", "softmax"]
    curves, _ = planted()
    table = gradient_table(curves, order=["dense_1", "dense_0", "dense_2", "dense_3", "softmax"])
    assert table["first_layer"].iloc[0] == "dense_1"


def test_gradient_figure_is_drawn(tmp_path):
    curves, frame = planted()
    path = gradient_norms_by_layer(layer_profile(curves, frame, condition=LESSON_CONDITION), tmp_path / "gradients.png", title="planted")
    assert path.is_file() and path.stat().st_size > 5000


def test_probe_curves_reads_every_probe_metric_of_each_run(tracking_uri):
    configure(tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("probes")
    ids = []
    for layers in (["dense_0", "softmax"], ["conv2d", "dense"]):
        run = client.create_run(experiment)
        for epoch in range(2):
            for layer in layers:
                client.log_metric(run.info.run_id, f"grad_norm/{layer}", 0.5 + epoch, step=epoch)
            client.log_metric(run.info.run_id, "val_accuracy", 0.9, step=epoch)
        client.log_metric(run.info.run_id, f"saturated/{layers[0]}", 0.25, step=0)
        ids.append(run.info.run_id)
    curves = probe_curves(ids)
    assert set(curves["metric"]) == {"grad_norm/dense_0", "grad_norm/softmax", "grad_norm/conv2d", "grad_norm/dense",
                                      "saturated/dense_0", "saturated/conv2d"}
    assert len(curves) == 2 * 2 * 2 + 2


def test_the_report_section_draws_the_profile_and_states_the_measured_ratio(tmp_path):
    from study.lesson.companion import LESSON
    from study.report.section import ReportContext
    from study.report.sections.gradients import GradientsSection

    curves, tidy = planted()
    (tmp_path / "tables").mkdir()
    (tmp_path / "figures").mkdir()
    ctx = ReportContext(spec=None, out=tmp_path, expected=[], all_runs=pd.DataFrame(), tidy=tidy, curves=curves,
                        parents=[])
    text = LESSON.sections["gradients"].render(ctx)  # the lesson companion's reading: within its condition
    assert "the lesson blames on sigmoid" in text
    assert "sigmoid: first / last hidden layer 0.0156" in text  # 0.01 / 0.64, means over seeds
    assert "relu: first / last hidden layer 1" in text
    assert "optimizer in {sgd}" in text and "init in {xavier, he}" in text
    assert (tmp_path / "figures" / "gradient_norms_by_layer.png").stat().st_size > 0
    profile = pd.read_csv(tmp_path / "tables" / "gradient_norms_by_layer.csv")
    assert profile["mean"].max() < 1000, "configs outside the lesson's condition stay out"
    no_probes = ReportContext(spec=None, out=tmp_path, expected=[], all_runs=pd.DataFrame(), tidy=tidy,
                              curves=curves[~curves["metric"].str.startswith("grad_norm/")], parents=[])
    assert GradientsSection().render(no_probes) == ""
    everything = GradientsSection().render(ctx)  # the core's section, without a companion: every config
    assert "every config" in everything and "lesson" not in everything
