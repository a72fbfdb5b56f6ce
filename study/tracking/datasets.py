"""A trial's data as MLflow dataset inputs: the runs table's Dataset column and the run's lineage.

Each run gets one input per split it used (context `training`, `validation`, `test`): the
dataset's name, a digest of exactly those rows, where the data came from (a path, a URL, or
the package that bundles it), and the arrays' schema and shapes (MLflow's numpy profile).
An invocation's (or worker's) run gets every split its study's trials use, each once
(`study_dataset_inputs`), so its row in the runs table shows the study's data too.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import mlflow
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.entities import DatasetInput, InputTag

from study.config import TrialConfig
from study.data.arrays import DatasetArrays
from study.data.npz import PREFIX as NPZ_PREFIX
from study.data.splits import SplitCache, SplitInput

CONTEXT_TAG = "mlflow.data.context"  # what MLflow's UI shows beside the dataset (training, validation, test)


def dataset_name(data: DatasetArrays) -> str:
    """`mnist`, `digits`, or the file name of a user's npz (not its whole path)."""
    return Path(data.name.removeprefix(NPZ_PREFIX)).name if data.name.startswith(NPZ_PREFIX) else data.name


def dataset_source(data: DatasetArrays) -> DatasetSource:
    """Where the arrays were read from, as an MLflow dataset source."""
    if data.uri:
        with warnings.catch_warnings():  # MLflow registers two equal local sources and says so each time
            warnings.simplefilter("ignore")
            return resolve_dataset_source(data.uri)
    return CodeDatasetSource(tags={"mlflow.source.name": data.source})


def dataset_inputs(data: DatasetArrays, inputs: list[SplitInput]) -> list[DatasetInput]:
    source = dataset_source(data)
    name = dataset_name(data)
    out = []
    for split in inputs:
        dataset = mlflow.data.from_numpy(split.x, targets=split.y, source=source, name=name, digest=split.digest)
        out.append(DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[InputTag(CONTEXT_TAG, split.context)]))
    return out


def study_dataset_inputs(splits: SplitCache, configs: Iterable[TrialConfig]) -> list[DatasetInput]:
    """Every split the trials of `configs` train, validate and test on, once each: trials that differ
    only in hyperparameters share their splits, and rows used in two roles (`validation: test`) are
    one dataset, which MLflow links to a run once, under its first context (as on a trial's run)."""
    uses = sorted({(c.dataset, c.validation, c.train_subset) for c in configs}, key=repr)
    seen: set[tuple[str, str]] = set()
    out = []
    for dataset, validation, train_subset in uses:
        inputs = []
        for split in splits.inputs(dataset, validation, train_subset):
            if (dataset, split.digest) not in seen:
                seen.add((dataset, split.digest))
                inputs.append(split)
        out += dataset_inputs(splits.dataset(dataset), inputs)
    return out
