"""TrialConfig, the one record that defines a trial, and the declarations of its fields (factors)."""

from study.config.factors import Factor, declare
from study.config.trial_config import (DEFAULTS, FIELD_NAMES, FACTORS, KEY_VERSION, TrialConfig, coerce_field,
                                       field_problem, from_params, parse_param, searchable_fields, structure_key)
from study.config.user_model import LESSON_MODEL, Hyperparameter

__all__ = ["DEFAULTS", "FACTORS", "FIELD_NAMES", "KEY_VERSION", "LESSON_MODEL", "Factor", "Hyperparameter",
           "TrialConfig", "coerce_field", "declare", "field_problem", "from_params", "parse_param",
           "searchable_fields", "structure_key"]
