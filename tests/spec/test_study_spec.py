"""Spec validation: every bad input is rejected with a message naming file, key and allowed values."""

from __future__ import annotations

import pytest

from study.config import TrialConfig
from study.core.errors import SpecError
from study.spec.study_spec import load_spec, parse_spec

GOOD = {
    "name": "t",
    "epochs": 2,
    "seeds": [0, 1],
    "base": {"activation": "relu"},
    "factors": {"activation": ["sigmoid", "relu"], "dropout": [0.0, 0.2]},
}


def bad(**changes):
    raw = {**GOOD, **changes}
    return {k: v for k, v in raw.items() if v is not ...}


@pytest.mark.parametrize(
    "raw, key, words",
    [
        (bad(colour="red"), "colour", ["unknown key", "allowed keys", "factors"]),
        (bad(factors={"activation": ["tanh"]}), "factors.activation[0]", ["'tanh'", "sigmoid, relu"]),
        (bad(factors={"depth": [1, 2]}), "factors.depth", ["unknown factor", "hidden_layers"]),
        (bad(factors={"dropout": []}), "factors.dropout", ["non-empty list"]),
        (bad(factors={"dropout": [0.0, 1.0]}), "factors.dropout[1]", ["0 <= dropout < 1"]),
        (bad(factors={"dropout": ["0.2"]}), "factors.dropout[0]", ["must be a number"]),
        (bad(factors={"learning_rate": [0.0]}), "factors.learning_rate[0]", ["learning_rate > 0"]),
        (bad(factors={"learning_rate": [-0.1]}), "factors.learning_rate[0]", ["learning_rate > 0"]),
        (bad(factors={"batch_norm": ["yes"]}), "factors.batch_norm[0]", ["boolean"]),
        (bad(factors={"init": ["glorot"]}), "factors.init[0]", ["normal, xavier, he"]),
        (bad(factors={"schedule": ["cosine"]}), "factors.schedule[0]", ["constant, plateau, warmup_cosine"]),
        (bad(factors={"optimizer": [{"adam": {"optimizer": "adam", "lr": 0.1}}]}),
         "factors.optimizer[0].adam.lr", ["unknown key", "learning_rate"]),
        (bad(factors={"optimizer": [{"adam": {"learning_rate": 0.1}}]}),
         "factors.optimizer[0].adam", ["must set the factor's own field 'optimizer'"]),
        (bad(factors={"optimizer": [{"adam": {"optimizer": "adamw"}}]}),
         "factors.optimizer[0].adam.optimizer", ["sgd, adam"]),
        (bad(factors={"dropout": [0.1, 0.1]}), "factors.dropout", ["repeat a label"]),
        (bad(factors=[1, 2]), "factors", ["mapping"]),
        (bad(epochs=0), "epochs", ["integer >= 1"]),
        (bad(epochs=2.5), "epochs", ["integer >= 1"]),
        (bad(batch_size="32"), "batch_size", ["integer >= 1"]),
        (bad(seeds=[]), "seeds", ["non-empty list"]),
        (bad(seeds=[0, -1]), "seeds[1]", ["integer >= 0"]),
        (bad(seeds=[1, 1]), "seeds", ["duplicates"]),
        (bad(design="random"), "design", ["full_factorial, one_at_a_time, random_subset"]),
        (bad(design="random_subset"), "sample_size", ["integer >= 1"]),
        (bad(sample_size=4), "sample_size", ["only applies to design random_subset"]),
        (bad(validation="val"), "validation", ["holdout, test"]),
        (bad(dataset="cifar10"), "dataset", ["mnist", "digits", "npz:PATH"]),
        (bad(train_subset=0), "train_subset", ["null or an integer >= 1"]),
        (bad(train_subset=55000), "factors", ["exceeds the 50000 training images"]),
        (bad(base={"units": 0}), "base.units", ["integer >= 1"]),
        (bad(base={"seed": 3}), "base.seed", ["unknown key"]),
        (bad(base={"epochs": 3}), "base.epochs", ["set it in one place"]),
        (bad(base={"schedule": "warmup_cosine", "warmup_epochs": 3}), "factors", ["epochs > warmup_epochs"]),
        (bad(base={"plateau_factor": 1.0}), "base.plateau_factor", ["0 < plateau_factor < 1"]),
        (bad(steps_per_execution=0), "steps_per_execution", ["integer >= 1"]),
        (bad(name="my study!"), "name", ["letters, digits"]),
        (bad(backend="torch"), "backend", ["tensorflow, jax"]),
        ([1, 2], "<top level>", ["mapping"]),
        (bad(confirm=[5]), "confirm", ["mapping", "top_k, seeds, path"]),
        (bad(confirm={"top_k": 2}), "confirm.seeds", ["is required"]),
        (bad(confirm={"seeds": [0, 5]}), "confirm.seeds", ["[0] repeat the study's seeds [0, 1]", "must be new"]),
        (bad(confirm={"seeds": [5, 5]}), "confirm.seeds", ["duplicates"]),
        (bad(confirm={"seeds": [5], "top_k": 0}), "confirm.top_k", ["integer >= 1"]),
        (bad(confirm={"seeds": [5], "path": "yes"}), "confirm.path", ["boolean"]),
        (bad(confirm={"seeds": [5], "best": 3}), "confirm.best", ["unknown key", "top_k, seeds, path"]),
        (bad(region=[1]), "region", ["mapping", "margin_pp"]),
        (bad(region={"units": [32]}), "region.units", ["not a factor of this study", "margin_pp"]),
        (bad(region={"margin_pp": 0}), "region.margin_pp", ["0 < margin_pp <= 100"]),
        (bad(region={"margin_pp": "1"}), "region.margin_pp", ["0 < margin_pp <= 100"]),
        (bad(region={"activation": ["tanh"]}), "region.activation", ["['sigmoid', 'relu']"]),
        (bad(region={"dropout": []}), "region.dropout", ["non-empty list"]),
        (bad(adaptive={"max_seeds": 5}), "adaptive.max_seeds", ["more than the 2 seed(s)"]),
        (bad(adaptive={"start_seeds": 2, "max_seeds": 2, "margin": 1}), "adaptive.margin", ["unknown key", "margin_pp"]),
        (bad(adaptive={"spending": "bonferroni"}), "adaptive.spending", ["pocock, obrien_fleming"]),
        (bad(adaptive={}, confirm={"top_k": 1, "seeds": [5]}), "adaptive", ["cannot be combined with `confirm`"]),
        (bad(lesson="yes"), "lesson", ["boolean"]),
        (bad(lesson=True, dataset="digits"), "lesson", ["lesson's MLP on MNIST", "model: lesson_mlp"]),
    ],
)
def test_bad_spec_is_rejected_with_a_precise_message(raw, key, words):
    with pytest.raises(SpecError) as err:
        parse_spec(raw, source="ablations/bad.yaml")
    message = str(err.value)
    assert message.startswith(f"ablations/bad.yaml: {key}: "), message
    for word in words:
        assert word in message, message


def test_region_names_levels_or_a_margin():
    spec = parse_spec(bad(region={"activation": ["relu"], "dropout": [0.2], "margin_pp": 2}), source="x.yaml")
    assert spec.region == {"activation": ["relu"], "dropout": ["0.2"], "margin_pp": 2.0}
    assert parse_spec(GOOD, source="x.yaml").region == {}


def test_spec_file_errors_name_the_file(tmp_path):
    with pytest.raises(SpecError, match="missing.yaml: <file>: no such file"):
        load_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="broken.yaml: <yaml>: not valid YAML"):
        load_spec(broken)


def test_lesson_grid_has_192_configs_times_3_seeds_and_keeps_the_first_432_keys():
    """Both warm-up variants: the 144 configs of the first grid (whose 432 keys test_layout pins) plus the 48
    with warmup_cosine_corrected; a rerun trains only those 144 new trials (and the confirm stage)."""
    from tests.test_layout import lesson_grid_v1_keys

    spec = load_spec("ablations/lesson_grid.yaml")
    trials = spec.unique_trials()
    assert len({t.config.replace(seed=0) for t in trials}) == 192
    assert len(trials) == 576 and len({t.key for t in trials}) == 576
    assert spec.base.executor == "fused", "chosen by benchmarks/grid_executors.py (docs/executors.md: Performance)"
    # the executor is part of a key: run with --executor keras, the grid's first 432 trials keep their keys
    keras_keys = {t.key for t in spec.with_overrides(executor="keras").unique_trials()}
    assert set(lesson_grid_v1_keys()) <= keras_keys
    assert not set(lesson_grid_v1_keys()) & {t.key for t in trials}
    assert [lv.label for lv in spec.factors["schedule"]] == ["constant", "plateau", "warmup_cosine",
                                                             "warmup_cosine_corrected"]
    # the adam level sets its own learning rate
    adam = [t.config for t in trials if t.config.optimizer == "adam"]
    assert {c.learning_rate for c in adam} == {0.001}
    assert spec.confirm is not None and not set(spec.confirm.seeds) & set(spec.seeds)


def test_the_lesson_s_own_sections_are_the_spec_s_to_ask_for_not_guessed_from_its_model():
    """Ioffe & Szegedy's Figure 1 setup (3 x 100 sigmoid, batch 60, with and without batch norm) is an MLP on
    MNIST too: without `lesson: true` it is a study of its own (no lesson claims, no lesson first model)."""
    from study.analysis.companion import companion_of
    from study.report.study_report import sections_for

    ioffe = parse_spec({"name": "ioffe_fig1", "batch_size": 60, "base": {"hidden_layers": 3, "units": 100,
                                                                         "activation": "sigmoid"},
                        "factors": {"batch_norm": [False, True]}})
    assert not ioffe.lesson and companion_of(ioffe) is None
    names = {type(section).__name__ for section in sections_for(ioffe)}
    assert not {"ClaimsSection", "LessonFiguresSection", "LessonComparisonSection"} & names, names
    lesson = parse_spec({**GOOD, "lesson": True})
    assert lesson.lesson and companion_of(lesson).name == "lesson"
    assert {"ClaimsSection", "LessonFiguresSection", "LessonComparisonSection"} <= {
        type(section).__name__ for section in sections_for(lesson)}
    shipped = {name: load_spec(f"ablations/{name}.yaml").lesson for name in
               ("lesson_baseline", "lesson_exercise", "lesson_fair", "lesson_grid", "lesson_optimizers",
                "lesson_regularisation", "quick")}
    assert all(shipped.values()), shipped


def test_shipped_specs_are_valid():
    for name, n in [("lesson_baseline", 5), ("lesson_exercise", 6), ("quick", 24), ("lesson_regularisation", 36),
                    ("lesson_optimizers", 60)]:
        assert len(load_spec(f"ablations/{name}.yaml").unique_trials()) == n
    assert load_spec("ablations/lesson_exercise.yaml").base.validation == "holdout"
    baseline = load_spec("ablations/lesson_baseline.yaml").base
    assert (baseline.hidden_layers, baseline.units, baseline.activation, baseline.optimizer,
            baseline.learning_rate, baseline.batch_size, baseline.epochs) == (4, 32, "relu", "sgd", 0.01, 32, 5)


def test_one_at_a_time_varies_one_factor_around_base():
    spec = parse_spec({**GOOD, "design": "one_at_a_time", "seeds": [0],
                       "base": {"activation": "relu", "dropout": 0.0}})
    trials = spec.trials()
    # base + sigmoid + dropout 0.2 (relu and 0.0 are the base itself)
    assert [t.levels for t in trials] == [{}, {"activation": "sigmoid"}, {"dropout": "0.2"}]


def test_trial_key_is_stable_and_complete():
    config = TrialConfig()
    # The key of the default config is pinned: if it changes, old studies would rerun.
    assert config.key() == TrialConfig().key()
    assert len(config.key()) == 16
    assert config.key() == "%s" % PINNED_DEFAULT_KEY
    for change in [{"seed": 1}, {"epochs": 6}, {"train_subset": 100}, {"dataset": "mnist", "validation": "test"},
                   {"backend": "jax"}, {"dropout": 0.1}]:
        assert config.replace(**change).key() != config.key(), change


PINNED_DEFAULT_KEY = "2320763cf976863f"


def test_random_subset_covers_every_level_and_is_seeded():
    raw = {**load_spec("ablations/lesson_grid.yaml").raw, "design": "random_subset", "sample_size": 12,
           "seeds": [0]}
    spec = parse_spec(raw)
    trials = spec.trials()
    assert len(trials) == 12
    for factor, levels in spec.factors.items():
        assert {t.levels[factor] for t in trials} == {lv.label for lv in levels}, factor
    assert [t.key for t in parse_spec(raw).trials()] == [t.key for t in trials]
    other = parse_spec({**raw, "sample_seed": 1}).trials()
    assert [t.key for t in other] != [t.key for t in trials]
