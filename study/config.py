"""TrialConfig: the one flat, explicit, hashable record that fully defines a trial.

Every field is an explicit keyword with a default (the scikit-learn convention), so
the trial key, the MLflow params and the report columns all come from one place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

Activation = Literal["sigmoid", "relu"]
Init = Literal["normal", "xavier", "he"]
Optimizer = Literal["sgd", "adam"]
Schedule = Literal["constant", "plateau", "warmup_cosine", "warmup_cosine_corrected"]
Validation = Literal["holdout", "test"]
Dataset = Literal["mnist"]
Backend = Literal["tensorflow", "jax"]

# The lesson's first model: 4x32 ReLU, SGD lr 0.01, batch 32, 5 epochs.
KEY_VERSION = 1  # bump when the meaning of a field changes, so old keys are not reused


@dataclass(frozen=True)
class TrialConfig:
    """Everything that determines what a trial computes (given the seed).

    Execution details that provably do not change the result (steps_per_execution,
    evaluation batch size, logging) are *not* part of it; the backend is, because
    TensorFlow and JAX draw different random numbers from the same seed.
    """

    dataset: Dataset = "mnist"
    validation: Validation = "holdout"
    train_subset: int | None = None
    epochs: int = 5
    batch_size: int = 32
    hidden_layers: int = 4
    units: int = 32
    activation: Activation = "relu"
    init: Init = "xavier"
    batch_norm: bool = False
    dropout: float = 0.0
    optimizer: Optimizer = "sgd"
    learning_rate: float = 0.01
    schedule: Schedule = "constant"
    warmup_epochs: int = 3
    plateau_factor: float = 0.1
    plateau_patience: int = 2
    early_stopping_patience: int = 0
    backend: Backend = "tensorflow"
    seed: int = 0

    def key(self) -> str:
        """Stable 16-hex-digit hash of the complete config (incl. seed, data, epochs)."""
        payload = json.dumps({"v": KEY_VERSION, **self.as_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrialConfig":
        return dataclasses.replace(self, **changes)

    def short(self, names: list[str] | None = None) -> str:
        """Human-readable summary of the given (or all factor-like) fields."""
        names = names or ["activation", "init", "batch_norm", "dropout", "optimizer", "schedule"]
        return " ".join(f"{n}={getattr(self, n)}" for n in names)


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(TrialConfig))
DEFAULTS: dict[str, Any] = TrialConfig().as_dict()


def field_type(name: str) -> Any:
    """The annotated type of a TrialConfig field (resolved from the string annotation)."""
    return _RESOLVED_TYPES[name]


def allowed_values(name: str) -> tuple[Any, ...] | None:
    """The allowed values of a Literal-typed field, or None for free-valued fields."""
    typ = field_type(name)
    if getattr(typ, "__origin__", None) is Literal:
        return get_args(typ)
    return None


def _resolve_types() -> dict[str, Any]:
    import typing

    hints = typing.get_type_hints(TrialConfig)
    return {name: hints[name] for name in FIELD_NAMES}


_RESOLVED_TYPES = _resolve_types()


# Fields that only change the values a model starts from or is fed, never its compiled
# train/eval functions: trials differing only in these share one compiled model (train.CompiledModels).
STATE_ONLY_FIELDS = frozenset({"seed", "init", "learning_rate", "schedule", "warmup_epochs", "plateau_factor",
                               "plateau_patience", "early_stopping_patience", "epochs", "batch_size",
                               "validation", "train_subset", "dataset"})


def structure_key(config: TrialConfig) -> tuple:
    """What determines a trial's compiled program (the rest is state, see STATE_ONLY_FIELDS)."""
    return tuple(sorted((k, v) for k, v in config.as_dict().items() if k not in STATE_ONLY_FIELDS))


def from_params(params: dict[str, str]) -> TrialConfig:
    """Rebuild a TrialConfig from MLflow's string params (the inverse of as_dict)."""
    values: dict[str, Any] = {}
    for name in FIELD_NAMES:
        if name not in params:
            continue
        values[name] = parse_param(name, params[name])
    return TrialConfig(**values)


def parse_param(name: str, text: str) -> Any:
    """Type one MLflow string param back to the field's Python type."""
    default = DEFAULTS[name]
    if text in ("None", ""):
        return None
    if isinstance(default, bool):
        return text == "True"
    if isinstance(default, int) or (default is None and name == "train_subset"):
        return int(float(text))
    if isinstance(default, float):
        return float(text)
    return text
