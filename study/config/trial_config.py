"""TrialConfig: the one flat, explicit, hashable record that fully defines a trial.

Every field is an explicit keyword with a default (the scikit-learn convention) and a
factor declaration (study.config.factors), so the trial key, the MLflow params, the
spec validation and the report columns all come from one place.

Adding a factor: one `declare(...)` line below, plus its use where it acts: study.training.recipe for
whatever acts on training (the loss for `label_smoothing`, the optimizer for `weight_decay`). Fields added after the first key version are
hashed only when they differ from their default, so every stored trial keeps its key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any

from study.config.factors import Factor, declare
from study.config.user_code import CODE_FIELDS, command_problem, train_problem
from study.config.user_model import LESSON_MODEL, PARAM_PREFIX, Pairs, model_problem, pairs, parse_text
from study.data.registry import dataset_problem

# Bump when the meaning of a field changes, so old keys are not reused.
KEY_VERSION = 1

_V1 = {"keyed_at_default": True}  # the fields of key version 1 are hashed even at their default


@dataclass(frozen=True)
class TrialConfig:
    """Everything that determines what a trial computes (given the seed).

    Execution details that provably do not change the result (steps_per_execution,
    evaluation batch size, logging) are *not* part of it; the backend and the executor
    are, because they draw different random numbers or round differently.
    """

    dataset: str = declare("mnist", "text", check=dataset_problem, **_V1,
                           doc="a registered dataset (study.data.registry)")
    validation: str = declare("holdout", "choice", choices=("holdout", "test"), **_V1,
                              doc="holdout: validate on the training set's last part; test: on the test set")
    train_subset: int | None = declare(None, "int", low=1, optional=True, **_V1,
                                       doc="train on the first N training examples only")
    epochs: int = declare(5, "int", low=1, **_V1)
    batch_size: int = declare(32, "int", low=1, **_V1)
    hidden_layers: int = declare(4, "int", low=1, structural=True, **_V1)
    units: int = declare(32, "int", low=1, structural=True, **_V1)
    activation: str = declare("relu", "choice", choices=("sigmoid", "relu"), structural=True, **_V1)
    init: str = declare("xavier", "choice", choices=("normal", "xavier", "he"), **_V1)
    batch_norm: bool = declare(False, "bool", structural=True, **_V1)
    dropout: float = declare(0.0, "float", low=0.0, high=1.0, high_open=True, structural=True, **_V1)
    optimizer: str = declare("sgd", "choice", choices=("sgd", "adam"), structural=True, **_V1)
    learning_rate: float = declare(0.01, "float", low=0.0, low_open=True, **_V1)
    schedule: str = declare("constant", "choice", choices=("constant", "plateau", "warmup_cosine",
                                                           "warmup_cosine_corrected"), **_V1)
    warmup_epochs: int = declare(3, "int", low=0, **_V1)
    plateau_factor: float = declare(0.1, "float", low=0.0, high=1.0, low_open=True, high_open=True, **_V1)
    plateau_patience: int = declare(2, "int", low=0, **_V1)
    early_stopping_patience: int = declare(0, "int", low=0, **_V1)
    backend: str = declare("tensorflow", "choice", choices=("tensorflow", "jax"), structural=True, **_V1)
    seed: int = declare(0, "int", low=0, **_V1)
    # --- added after key version 1: hashed only when set to something else than the default
    weight_decay: float = declare(0.0, "float", low=0.0, structural=True,
                                  doc="decoupled weight decay of the optimizer (Keras' weight_decay)")
    label_smoothing: float = declare(0.0, "float", low=0.0, high=1.0, high_open=True, structural=True,
                                     doc="smooth the loss's one-hot targets: (1 - e) * one_hot + e / classes")
    executor: str = declare("keras", "choice", choices=("keras", "fused", *CODE_FIELDS), structural=True,
                            doc="how trials are trained (study.training.executors.registry); function and "
                                "command run your code (set by train: and command:)")
    model: str = declare(LESSON_MODEL, "text", check=model_problem, structural=True,
                         doc="lesson_mlp, or package.module:function: your builder (study.training.models)")
    hparams: Pairs = declare((), "mapping", structural=True,
                             doc="your model's own hyperparameters, name-sorted (name, value) pairs "
                                 "(study.config.user_model); a spec names each one like a field")
    train: str | None = declare(None, "text", optional=True, check=train_problem, structural=True,
                                doc="package.module:function: your training function, called as "
                                    "function(config, reporter) (study.config.user_code)")
    command: str | None = declare(None, "text", optional=True, check=command_problem, structural=True,
                                  doc="a command line run per trial, {placeholders} from the config, logging to the "
                                      "trial's MLflow run (study.config.user_code)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "hparams", pairs(self.hparams))  # a dict or JSON lists become sorted pairs

    def __getattr__(self, name: str) -> Any:
        """A user hyperparameter by name (`config.filters`), like a field; only called for names that are not."""
        if not name.startswith("_"):
            for key, value in object.__getattribute__(self, "hparams"):
                if key == name:
                    return value
        raise AttributeError(f"TrialConfig has no field or hyperparameter {name!r}")

    def key(self) -> str:
        """Stable 16-hex-digit hash of the complete config (incl. seed, data, epochs)."""
        payload = {"v": KEY_VERSION, **self.identity()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def identity(self) -> dict[str, Any]:
        """The fields that identify this config: those of key version 1, and later ones where not default."""
        return {name: value for name, value in self.as_dict().items()
                if FACTORS[name].keyed_at_default or value != DEFAULTS[name]}

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrialConfig:
        return dataclasses.replace(self, **changes)

    def values(self) -> dict[str, Any]:
        """Every field and user hyperparameter by its own name (what a level or a builder sees)."""
        return {**{k: v for k, v in self.as_dict().items() if k != "hparams"}, **dict(self.hparams)}

    def with_values(self, values: dict[str, Any]) -> TrialConfig:
        """The config with fields and already-declared hyperparameters set by name (a level, an Optuna point)."""
        fields_ = {k: v for k, v in values.items() if k in FACTORS}
        own = {k: v for k, v in values.items() if k not in FACTORS}
        unknown = sorted(set(own) - {name for name, _ in self.hparams})
        if unknown:
            raise KeyError(f"not a config field nor a declared hyperparameter: {', '.join(unknown)}")
        if own:
            fields_["hparams"] = {**dict(fields_.get("hparams", self.hparams)), **own}
        return self.replace(**fields_)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> TrialConfig:
        """A config from fields and hyperparameters by name (the inverse of values())."""
        return cls(**{k: v for k, v in values.items() if k in FACTORS},
                   hparams={k: v for k, v in values.items() if k not in FACTORS})

    def mlflow_params(self) -> dict[str, str]:
        """One MLflow param per field (as text) and per user hyperparameter (`hp.<name>`)."""
        params = {k: str(v) for k, v in self.as_dict().items() if k != "hparams"}
        params.update({PARAM_PREFIX + name: str(value) for name, value in self.hparams})
        return params


FACTORS: dict[str, Factor] = {f.name: f.metadata["factor"] for f in fields(TrialConfig)}
FIELD_NAMES: tuple[str, ...] = tuple(FACTORS)
DEFAULTS: dict[str, Any] = TrialConfig().as_dict()


def searchable_fields() -> tuple[str, ...]:
    """Numeric fields Optuna can search (the seed is not a hyperparameter)."""
    return tuple(n for n, f in FACTORS.items() if f.numeric and n != "seed")


def field_problem(name: str, value: Any) -> str | None:
    """Why `value` is not valid for config field `name`, or None if it is."""
    return FACTORS[name].problem(name, value)


def coerce_field(name: str, value: Any) -> Any:
    return FACTORS[name].coerce(value)


def structure_key(config: TrialConfig) -> tuple:
    """What determines a trial's compiled program; the other fields are inputs or Python-side state."""
    return tuple(sorted((k, v) for k, v in config.as_dict().items() if FACTORS[k].structural))


def parse_param(name: str, text: str) -> Any:
    """Type one MLflow string param back to the field's Python type."""
    return FACTORS[name].parse(text)


def from_params(params: dict[str, str], declared: dict[str, Factor] | None = None) -> TrialConfig:
    """Rebuild a TrialConfig from MLflow's string params (the inverse of mlflow_params); absent fields take
    their default, which is also what a run recorded before the field existed trained with. User
    hyperparameters (`hp.<name>`) are typed by their declarations when given."""
    own = {name.removeprefix(PARAM_PREFIX): parse_text(text, (declared or {}).get(name.removeprefix(PARAM_PREFIX)))
           for name, text in params.items() if name.startswith(PARAM_PREFIX)}
    return TrialConfig(**{name: parse_param(name, params[name]) for name in FIELD_NAMES
                          if name in params and name != "hparams"}, hparams=own)
