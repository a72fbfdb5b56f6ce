"""`study analyze`'s options and spec file: the same keys, each bad value one message naming it."""

from __future__ import annotations

import pytest

from study.core.errors import SpecError
from study.spec.analyze_spec import load_analyze_spec, parse_analyze_spec

BASE = {"experiment": "sweep 1/a", "factors": "lr, optimizer", "metric": "val_loss"}


def test_defaults_and_the_comma_list_of_factors():
    spec = parse_analyze_spec(BASE)
    assert spec.factors == ("lr", "optimizer") and spec.seed_param == "seed" and not spec.lower_is_better
    assert spec.name == "sweep_1_a" and spec.chance is None and spec.reference == {}


def test_file_keys_with_dashes_and_options_over_the_file(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("experiment: e\nfactors: [lr]\nmetric: loss\nseed-param: trial_seed\nlower-is-better: true\n"
                    "chance: 2.3\nreference: {lr: 0.001}\n")
    spec = load_analyze_spec(path, {"metric": "val_loss", "chance": None})
    assert (spec.metric, spec.seed_param, spec.lower_is_better, spec.chance) == ("val_loss", "trial_seed", True, 2.3)
    assert spec.reference == {"lr": "0.001"} and spec.source == str(path)


@pytest.mark.parametrize("change, message", [
    ({"experiment": None}, "command line: --experiment: is required"),
    ({"factors": []}, "command line: --factors: [] must be a non-empty list of param names"),
    ({"factors": "lr,lr"}, "command line: --factors: ['lr', 'lr'] names a param twice"),
    ({"factors": "lr,seed"}, "command line: --factors: 'seed' is the seed param"),
    ({"higher_is_better": True, "lower_is_better": True}, "command line: --lower-is-better: contradicts"),
    ({"chance": "low"}, "command line: --chance: 'low' must be a finite number"),
    ({"margin": 0.1}, "command line: --margin: only applies with chance"),
    ({"reference": "opt=sgd"}, "command line: --reference: 'opt' is not one of the factors (lr, optimizer)"),
    ({"reference": "lr"}, "command line: --reference: 'lr' must be factor=level pairs"),
    ({"name": "../up"}, "command line: --name: '../up' must be letters, digits"),
])
def test_bad_values_name_the_option(change, message):
    with pytest.raises(SpecError) as error:
        parse_analyze_spec({**BASE, **change})
    assert str(error.value).startswith(message)


def test_a_file_names_its_own_keys(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("experiment: e\nfactors: [lr]\nmetric: loss\nchance: [1]\n")
    with pytest.raises(SpecError, match=r"a\.yaml: chance: \[1\] must be a finite number"):
        load_analyze_spec(path)
    path.write_text("experiment: e\nfactors: [lr]\nmetric: loss\nseeds: [1]\n")
    with pytest.raises(SpecError, match=r"a\.yaml: seeds: unknown key; allowed keys: experiment, factors"):
        load_analyze_spec(path)
