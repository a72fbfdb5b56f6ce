"""The mechanism probes (study.training.probes) as tables: does the gradient vanish in the first layers, and
how many hidden units are saturated (issue 19: "sigmoid's gradients vanish", measured, not inferred).

Input: the long frame of per-epoch metrics (run_id, metric, epoch, value; study.analysis.runs.epoch_curves)
holding `grad_norm/<layer>` and `saturated/<layer>`. Epochs are MLflow steps (0 = the first epoch). Layers
are ordered by their trailing index (`dense_0` < `dense_1` < ...), names without one (the output layer,
`softmax`) last; pass `order` for a model whose layer names do not say their order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from study.analysis.runs import epoch_curves
from study.core.names import GRAD_NORM_PREFIX, PROBE_PREFIXES, SATURATED_PREFIX
from study.tracking.reading import metric_names


def probe_curves(run_ids: Iterable[str], structure: Iterable[object] | None = None) -> pd.DataFrame:
    """epoch_curves of every probe metric each run logged (their names depend on the model's layers).
    `structure`: per run, what decides its layers' names (e.g. (model, hidden_layers)); the names are then read
    off one run per structure instead of every run."""
    run_ids = list(run_ids)
    keys = list(structure) if structure is not None else run_ids
    names: dict[object, list[str]] = {}
    frames = []
    for run_id, key in zip(run_ids, keys):
        if key not in names:
            names[key] = sorted(m for m in metric_names(run_id) if m.startswith(PROBE_PREFIXES))
        if names[key]:
            frames.append(epoch_curves([run_id], names[key]))
    return pd.concat(frames, ignore_index=True) if frames else epoch_curves([])


def layer_key(layer: str) -> tuple[int, float, str]:
    """Sort key: names ending in `_<n>` by n, then the rest (the output layer) by name."""
    match = re.search(r"_(\d+)$", layer)
    return (0, float(match.group(1)), layer) if match else (1, math.inf, layer)


def _layers(curves: pd.DataFrame, prefix: str, order: Sequence[str] | None) -> list[str]:
    found = {m.removeprefix(prefix) for m in curves["metric"].unique() if m.startswith(prefix)}
    if order is not None:
        return [layer for layer in order if layer in found]
    return sorted(found, key=layer_key)


def _wide(curves: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """(run_id, epoch) x layer values of one probe kind."""
    data = curves[curves["metric"].str.startswith(prefix)]
    data = data.assign(layer=data["metric"].str.removeprefix(prefix))
    return data.pivot_table(index=["run_id", "epoch"], columns="layer", values="value", aggfunc="last")


def gradient_table(curves: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run: the first hidden layer's gradient norm at the first and the last epoch; the ratio
    first hidden / last hidden layer gradient norm at both (below 1: the gradient shrinks towards the input);
    each hidden layer's saturated share at the first epoch (`saturated_<layer>`)."""
    layers = _layers(curves, GRAD_NORM_PREFIX, order)
    if len(layers) < 2:
        return pd.DataFrame(columns=["run_id"])
    hidden = layers[:-1]  # the last kernel is the output layer's
    first, last = hidden[0], hidden[-1]
    grads = _wide(curves, GRAD_NORM_PREFIX).reset_index()
    rows = []
    for run_id, part in grads.groupby("run_id", sort=False):
        part = part.sort_values("epoch")
        start, end = part.iloc[0], part.iloc[-1]
        rows.append({"run_id": run_id, "first_layer": first, "last_hidden_layer": last,
                     "epochs": int(end["epoch"]) + 1,
                     "grad_first_epoch1": start[first], "grad_first_last_epoch": end[first],
                     "grad_ratio_epoch1": start[first] / start[last],
                     "grad_ratio_last_epoch": end[first] / end[last]})
    table = pd.DataFrame(rows)
    saturated = _layers(curves, SATURATED_PREFIX, order)
    if saturated:
        wide = _wide(curves, SATURATED_PREFIX).reset_index()
        at_start = wide.sort_values("epoch").groupby("run_id").first()
        columns = {layer: f"saturated_{layer}" for layer in saturated}
        table = table.merge(at_start[saturated].rename(columns=columns).reset_index(), on="run_id", how="left")
    return table


def layer_profile(curves: pd.DataFrame, frame: pd.DataFrame, by: str = "activation",
                  condition: Mapping[str, Sequence] | None = None, prefix: str = GRAD_NORM_PREFIX,
                  epochs: Sequence[int] | None = None, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Per level of `by`, epoch and layer: the mean over seeds of each seed's mean probe value (over the
    configs of that level within `condition`, default every config), and its min and max over seeds.
    `frame`: trials_frame (run_id, seed, `by` and the condition's columns). Epochs: the first and the last."""
    condition = {} if condition is None else condition
    chosen = frame
    for column, allowed in condition.items():
        chosen = chosen[chosen[column].isin(list(allowed))]
    layers = _layers(curves, prefix, order)
    data = curves[curves["metric"].isin([prefix + layer for layer in layers])]
    data = data.merge(chosen[["run_id", "seed", by]], on="run_id")
    columns = ["level", "epoch", "layer", "layer_index", "mean", "min", "max", "seeds"]
    if data.empty:
        return pd.DataFrame(columns=columns)
    if epochs is None:
        epochs = sorted({int(data["epoch"].min()), int(data["epoch"].max())})
    data = data[data["epoch"].isin(list(epochs))].assign(layer=lambda d: d["metric"].str.removeprefix(prefix))
    per_seed = data.groupby([by, "seed", "epoch", "layer"], observed=True)["value"].mean().reset_index()
    bands = per_seed.groupby([by, "epoch", "layer"], observed=True)["value"].agg(["mean", "min", "max", "count"])
    bands = bands.reset_index().rename(columns={by: "level", "count": "seeds"})
    bands["layer_index"] = bands["layer"].map({layer: i for i, layer in enumerate(layers)})
    return bands.sort_values(["level", "epoch", "layer_index"]).reset_index(drop=True)[columns]



GRADIENT_RATIO = "grad_ratio_log10"  # log10(first hidden / last hidden gradient norm) after the first epoch
FIRST_GRADIENT = "grad_first_log10"  # log10 of the first hidden layer's gradient norm after the first epoch


def with_gradients(frame: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """The trial frame with the mechanism's per-trial numbers (log10, so a block difference is a ratio) when the
    trials logged probes: how much the gradient shrinks from the last hidden layer to the first after the first
    epoch, and the first hidden layer's gradient norm."""
    if curves.empty or not curves["metric"].str.startswith(GRAD_NORM_PREFIX).any():
        return frame
    table = gradient_table(curves[curves["metric"].str.startswith(PROBE_PREFIXES)])
    if table.empty or "grad_ratio_epoch1" not in table:
        return frame
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = pd.DataFrame({"run_id": table["run_id"],
                              GRADIENT_RATIO: np.log10(table["grad_ratio_epoch1"].astype(float)),
                              FIRST_GRADIENT: np.log10(table["grad_first_epoch1"].astype(float))})
    extra = extra.replace([np.inf, -np.inf], np.nan)
    return frame.drop(columns=[c for c in (GRADIENT_RATIO, FIRST_GRADIENT) if c in frame]).merge(extra, on="run_id",
                                                                                                 how="left")
