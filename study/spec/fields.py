"""Config field values in a spec, checked against their factor declarations (study.config)."""

from __future__ import annotations

from typing import Any

from study.config import FIELD_NAMES, TrialConfig, coerce_field, field_problem
from study.config.user_code import code_problem
from study.core.errors import SpecError
from study.data.registry import static_train_size
from study.spec.hyperparameters import SETTABLE, Fields
from study.spec.reading import reject_unknown
from study.spec.user_code import check_code, code_executor

# Top-level keys that fill the base config (study-wide settings).
STUDY_WIDE_FIELDS = ("dataset", "epochs", "batch_size", "validation", "train_subset", "backend", "executor", "model",
                     "train", "command")
__all__ = ["SETTABLE", "STUDY_WIDE_FIELDS", "checked_field", "config_error", "parse_base"]


def checked_field(source: str, key: str, name: str, value: Any) -> Any:
    """One config field's value, validated and typed (an integer for a float field becomes a float)."""
    value = coerce_field(name, value)
    problem = field_problem(name, value)
    if problem:
        raise SpecError(source, key, problem)
    return value


def parse_base(source: str, raw: dict, study_wide: tuple[str, ...] = STUDY_WIDE_FIELDS,
               fields: Fields = Fields()) -> TrialConfig:
    """`base` plus the study-wide top-level fields; a field set in both places is an error. The spec's own
    hyperparameters (`fields.declared`) start at their defaults and may be set in `base` like any field."""
    base_raw = raw.get("base", {}) or {}
    if not isinstance(base_raw, dict):
        raise SpecError(source, "base", "must be a mapping of config fields to values")
    reject_unknown(source, "base", base_raw, fields.names)
    values: dict[str, Any] = {}
    own = fields.defaults()
    for name, value in base_raw.items():
        if name in study_wide and name in raw:
            raise SpecError(source, f"base.{name}", "is also set at the top level; set it in one place")
        (own if name in fields.declared else values)[name] = fields.checked(source, f"base.{name}", name, value)
    for name in study_wide:
        if name in raw and name in FIELD_NAMES:
            values[name] = checked_field(source, name, name, raw[name])
    base = TrialConfig(**code_executor(source, values), hparams=own)  # train:/command: imply their executor
    check_code(source, base)
    return base


def config_error(config: TrialConfig) -> str | None:
    """Cross-field checks that only make sense on a complete config."""
    if config.schedule.startswith("warmup") and config.epochs <= config.warmup_epochs:
        return (f"schedule {config.schedule} needs epochs > warmup_epochs "
                f"(got epochs={config.epochs}, warmup_epochs={config.warmup_epochs})")
    if code_problem(config):
        return code_problem(config)
    if config.executor == "fused" and config.backend != "jax":
        return f"executor fused trains with JAX: set backend: jax (got backend={config.backend})"
    available = static_train_size(config.dataset, config.validation)
    if config.train_subset is not None and available is not None and config.train_subset > available:
        return (f"train_subset={config.train_subset} exceeds the {available} training images available with "
                f"validation={config.validation}")
    return None
