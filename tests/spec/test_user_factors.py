"""A spec's own model and hyperparameters: declared once, validated like built-in fields, keyed only when used."""

from __future__ import annotations

import json

import pytest

from study.config import TrialConfig, from_params
from study.core.errors import SpecError
from study.spec.study_spec import parse_spec
from study.spec.tune_spec import parse_tune_spec

GOOD = {
    "name": "cnn",
    "model": "my_models.cnn:build",
    "dataset": "digits",
    "epochs": 2,
    "seeds": [0, 1],
    "hyperparameters": {
        "filters": {"type": "int", "low": 1, "high": 64, "default": 16},
        "kernel_size": {"type": "choice", "choices": [3, 5], "default": 3},
        "padding": {"type": "choice", "choices": ["same", "valid"], "default": "same"},
        "width": {"type": "float", "low": 0.25, "default": 1},
        "residual": {"type": "bool", "default": False},
    },
    "base": {"kernel_size": 5, "dropout": 0.1},
    "factors": {"filters": [8, 32], "residual": [False, True]},
}


def bad(**changes):
    raw = json.loads(json.dumps(GOOD))
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not ...}


def hyper(**changes):
    return {**GOOD["hyperparameters"], **changes}


def test_own_hyperparameters_become_factors_like_built_in_fields():
    spec = parse_spec(GOOD, source="s.yaml")
    assert spec.base.model == "my_models.cnn:build" and spec.base.dataset == "digits"
    assert dict(spec.base.hparams) == {"filters": 16, "kernel_size": 5, "padding": "same", "width": 1.0,
                                       "residual": False}
    assert isinstance(spec.base.width, float)  # an integer default of a float hyperparameter is a float
    trials = spec.unique_trials()
    assert len(trials) == 8 and len({t.key for t in trials}) == 8
    assert {(t.config.filters, t.config.residual) for t in trials} == {(8, False), (8, True), (32, False),
                                                                         (32, True)}
    assert trials[0].levels == {"filters": "8", "residual": "false"}
    assert all(t.config.kernel_size == 5 and t.config.dropout == 0.1 for t in trials)


def test_compound_levels_and_one_at_a_time_set_own_hyperparameters():
    raw = bad(factors={"size": [{"small": {"size": 1, "filters": 8}}, {"big": {"size": 2, "filters": 64}}]},
              hyperparameters=hyper(size={"type": "int", "low": 1, "default": 1}))
    spec = parse_spec(raw, source="s.yaml")
    assert [(t.config.size, t.config.filters) for t in spec.unique_trials()[:2]] == [(1, 8), (2, 64)]
    spec = parse_spec(bad(design="one_at_a_time", seeds=[0]), source="s.yaml")
    assert [t.levels for t in spec.trials()] == [{}, {"filters": "8"}, {"filters": "32"}, {"residual": "true"}]


@pytest.mark.parametrize("raw, key, words", [
    (bad(factors={"filtres": [8, 16]}), "factors.filtres", ["unknown factor", "did you mean 'filters'?",
                                                              "kernel_size"]),
    (bad(factors={"filters": [8, 0]}), "factors.filters[1]", ["0 must be an integer in [1, 64]"]),
    (bad(factors={"filters": [8, 2.5]}), "factors.filters[1]", ["must be an integer"]),
    (bad(factors={"kernel_size": [3, 7]}), "factors.kernel_size[1]", ["7 is not allowed; allowed values: 3, 5"]),
    (bad(factors={"residual": ["yes"]}), "factors.residual[0]", ["boolean"]),
    (bad(factors={"width": [0.1]}), "factors.width[0]", ["out of range", "width >= 0.25"]),
    (bad(base={"filtres": 8}), "base.filtres", ["unknown key", "filters"]),
    (bad(base={"padding": "full"}), "base.padding", ["'full' is not allowed; allowed values: same, valid"]),
    (bad(factors={"f": [{"x": {"filters": 8}}]}), "factors.f", ["unknown factor"]),
    (bad(hyperparameters=hyper(units={"type": "int", "default": 3})), "hyperparameters.units", ["built-in"]),
    (bad(hyperparameters=hyper(status={"type": "int", "default": 3})), "hyperparameters.status", ["already use"]),
    (bad(hyperparameters=hyper(**{"2d": {"type": "int", "default": 3}})), "hyperparameters.2d", ["letters"]),
    (bad(hyperparameters=hyper(depth={"type": "integer", "default": 3})), "hyperparameters.depth.type",
     ["int, float, bool, choice, text"]),
    (bad(hyperparameters=hyper(depth={"type": "int"})), "hyperparameters.depth.default", ["required"]),
    (bad(hyperparameters=hyper(depth={"type": "int", "low": 2, "default": 1})), "hyperparameters.depth.default",
     ["integer >= 2"]),
    (bad(hyperparameters=hyper(depth={"type": "int", "low": 4, "high": 2, "default": 3})), "hyperparameters.depth",
     ["inverted range"]),
    (bad(hyperparameters=hyper(depth={"type": "int", "choices": [1], "default": 1})),
     "hyperparameters.depth.choices", ["only applies to type choice"]),
    (bad(hyperparameters=hyper(act={"type": "choice", "choices": [], "default": 1})),
     "hyperparameters.act.choices", ["non-empty list"]),
    (bad(hyperparameters=hyper(act={"type": "choice", "choices": ["a", "a"], "default": "a"})),
     "hyperparameters.act.choices", ["repeats"]),
    (bad(hyperparameters=hyper(depth={"type": "int", "default": 1, "step": 2})), "hyperparameters.depth.step",
     ["unknown key"]),
    (bad(hyperparameters=[1]), "hyperparameters", ["mapping"]),
    (bad(model="lesson_mlp"), "hyperparameters", ["or your own training code (train:, command:)"]),
    (bad(model="my_models.cnn"), "model", ["package.module:function"]),
    (bad(model="my models:build"), "model", ["package.module:function"]),
])
def test_bad_own_factors_are_rejected_naming_the_key(raw, key, words):
    with pytest.raises(SpecError) as err:
        parse_spec(raw, source="s.yaml")
    message = str(err.value)
    assert message.startswith(f"s.yaml: {key}: "), message
    for word in words:
        assert word in message, message


def test_keys_change_only_when_a_model_or_hyperparameters_are_used():
    plain = TrialConfig()
    assert plain.key() == "2320763cf976863f" == plain.replace(model="lesson_mlp", hparams=()).key()
    assert "model" not in plain.identity() and "hparams" not in plain.identity()
    own = plain.replace(model="m:build", hparams={"filters": 8})
    assert own.key() != plain.replace(model="m:build").key() != plain.key()
    assert own.replace(hparams={"filters": 16}).key() != own.key()
    # a queue written before these fields existed holds configs without them: same trials, same keys
    old = {k: v for k, v in plain.as_dict().items() if k not in ("model", "hparams")}
    assert TrialConfig(**old).key() == plain.key()


def test_own_hyperparameters_survive_json_and_mlflow_params():
    config = TrialConfig(model="m:build", hparams={"filters": 8, "act": "relu", "width": 0.5, "residual": True})
    assert config.hparams == (("act", "relu"), ("filters", 8), ("residual", True), ("width", 0.5))
    again = TrialConfig(**json.loads(json.dumps(config.as_dict())))  # the queue stores configs as JSON
    assert again == config and again.key() == config.key() and hash(again) == hash(config)
    params = config.mlflow_params()
    assert {k: v for k, v in params.items() if k.startswith("hp.")} == {
        "hp.act": "relu", "hp.filters": "8", "hp.residual": "True", "hp.width": "0.5"}
    assert "hparams" not in params and params["model"] == "m:build"
    assert from_params(params) == config
    assert config.values()["filters"] == 8 and config.filters == 8
    assert config.with_values({"filters": 16, "dropout": 0.2}).values()["filters"] == 16
    with pytest.raises(KeyError, match="filtres"):
        config.with_values({"filtres": 16})
    with pytest.raises(AttributeError, match="filtres"):
        config.filtres  # noqa: B018


def test_tuning_searches_own_numeric_hyperparameters():
    raw = {"name": "t", "model": "m:build", "dataset": "digits", "epochs": 2,
           "hyperparameters": {"filters": {"type": "int", "low": 1, "default": 8},
                               "padding": {"type": "choice", "choices": ["same", "valid"], "default": "same"}},
           "search_space": {"filters": {"low": 4, "high": 32, "log": True}, "dropout": {"low": 0.0, "high": 0.5}}}
    spec = parse_tune_spec(raw, source="t.yaml")
    assert spec.space["filters"].is_int and not spec.space["dropout"].is_int
    assert spec.space["filters"].as_dict() == {"low": 4, "high": 32, "log": True, "step": 1}
    assert spec.config_for({"filters": 16, "dropout": 0.25}).filters == 16
    assert spec.base_params() == {"filters": 8, "dropout": 0.0}
    for space, key, words in [({"padding": {"low": 0, "high": 1}}, "search_space.padding", ["non-numeric"]),
                              ({"filters": {"low": 0, "high": 4}}, "search_space.filters.low", [">= 1"]),
                              ({"filtres": {"low": 1, "high": 4}}, "search_space.filtres", ["unknown"])]:
        with pytest.raises(SpecError) as err:
            parse_tune_spec({**raw, "search_space": space}, source="t.yaml")
        assert str(err.value).startswith(f"t.yaml: {key}: "), str(err.value)
        assert all(w in str(err.value) for w in words), str(err.value)


def test_optuna_identity_of_a_study_without_own_hyperparameters_is_unchanged():
    """A tuning study stored before this work resumes: its identity (base, space) is computed as before."""
    from study.tuning.optuna_setup import identity

    spec = parse_tune_spec({"name": "t", "search_space": {"dropout": {"low": 0.0, "high": 0.5}}}, source="t.yaml")
    assert json.loads(identity(spec)["base_config"]) == {k: v for k, v in TrialConfig().identity().items()
                                                         if k != "dropout"}
    assert identity(spec)["search_space"] == '{"dropout": {"high": 0.5, "log": false, "low": 0.0, "step": null}}'


def test_lesson_sections_belong_to_the_lesson_model_on_mnist_only():
    from study.lesson.companion import lesson_setup

    assert lesson_setup([TrialConfig(), TrialConfig(init="he")])
    assert not lesson_setup([TrialConfig(), TrialConfig(dataset="digits")])
    assert not lesson_setup([TrialConfig(model="m:build")])
