"""validate_config: every bad value is rejected with a ConfigError naming the parameter,
its allowed range and the nearest allowed value; URL strings are coerced; and, over
arbitrary inputs (hypothesis), nothing but a valid config or a ConfigError comes out."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runner
from runner import ConfigError, ExperimentConfig, Limits, validate_config

FIELDS = tuple(f.name for f in dataclasses.fields(ExperimentConfig))
LIMITS = Limits()   # explicit: the tests must not depend on NTK_* variables of the caller


def check(**kw):
    return validate_config(limits=LIMITS, **kw)


def test_defaults_are_valid():
    cfg = check()
    assert cfg == ExperimentConfig()
    assert validate_config(ExperimentConfig(), limits=LIMITS) == ExperimentConfig()
    assert validate_config({}, limits=LIMITS) == ExperimentConfig()
    assert validate_config(ExperimentConfig().to_dict(), limits=LIMITS) == ExperimentConfig()


@pytest.mark.parametrize("param,value,allowed", [
    ("width", -3, "[1, 4096]"),
    ("width", 0, "[1, 4096]"),
    ("width", 1e12, "[1, 4096]"),
    ("width", "abc", "[1, 4096]"),
    ("width", True, "[1, 4096]"),
    ("width", 2.5, "[1, 4096]"),
    ("width", None, "[1, 4096]"),
    ("width", float("nan"), "[1, 4096]"),
    ("n_train", "1e12", "[2, 9500]"),
    ("n_train", 1, "[2, 9500]"),
    ("n_val", 5, "[10, "),   # upper bound depends on the pool size
    ("lr", 0, "(0, 100]"),
    ("lr", float("nan"), "(0, 100]"),
    ("lr", float("inf"), "(0, 100]"),
    ("lr", -1, "(0, 100]"),
    ("lr", "fast", "(0, 100]"),
    ("lr", 1000, "(0, 100]"),
    ("reg", "l3", "none, l1, l2"),
    ("reg", 2, "none, l1, l2"),
    ("reg_strength", -1, "[0, 100]"),
    ("reg_strength", float("-inf"), "[0, 100]"),
    ("weight_decay", -1e-3, "[0, 100]"),
    ("weight_decay", 101, "[0, 100]"),
    ("weight_decay", float("nan"), "[0, 100]"),
    ("weight_decay", "heavy", "[0, 100]"),
    ("epochs", 0, "[1, 500]"),
    ("epochs", 501, "[1, 500]"),
    ("optimizer", "rmsprop", "sgd, adam"),
    ("batch_size", -1, "[0, 1000]"),
    ("seed", -1, "[0, 2147483647]"),
    ("seed", 2 ** 31, "[0, 2147483647]"),
    ("parameterization", "mup", "standard, ntk"),
    ("top_k", 0, "[1, 100]"),
    ("patience", 0, "[1, 1000]"),
    ("dataset", "cifar10", "bundled, full"),
])
def test_rejects_bad_value(param, value, allowed):
    with pytest.raises(ConfigError) as err:
        check(**{param: value})
    e = err.value
    assert e.param == param, f"{param}={value!r}: error names {e.param!r}"
    assert allowed in e.allowed, f"{param}={value!r}: allowed={e.allowed!r}"
    msg = str(e)
    assert param in msg and allowed in msg and "allowed" in msg, msg
    assert isinstance(e, ValueError)


def test_top_k_above_n_train():
    with pytest.raises(ConfigError) as err:
        check(n_train=5, top_k=6)
    assert err.value.param == "top_k" and "[1, 5]" in str(err.value)
    assert err.value.suggestion == 5
    assert check(n_train=5, top_k=5).top_k == 5


def test_unknown_key():
    with pytest.raises(ConfigError) as err:
        validate_config({"width": 8, "widht": 9}, limits=LIMITS)
    assert err.value.param == "widht"
    assert "width" in str(err.value) and "allowed" in str(err.value)
    with pytest.raises(ConfigError) as err:
        check(learning_rate=0.1)
    assert err.value.param == "learning_rate"


def test_not_a_mapping():
    with pytest.raises(ConfigError) as err:
        validate_config([("width", 3)], limits=LIMITS)
    assert err.value.param == "config"


def test_url_strings_are_coerced():
    cfg = validate_config({"width": "128", "lr": "1e-3", "reg": " l2 ", "reg_strength": "0.01",
                           "n_train": " 200", "top_k": "7", "optimizer": "ADAM",
                           "parameterization": "NTK", "epochs": "3.0", "seed": "42"},
                          limits=LIMITS)
    assert cfg.width == 128 and type(cfg.width) is int
    assert cfg.lr == pytest.approx(1e-3) and type(cfg.lr) is float
    assert cfg.reg == "l2" and cfg.reg_strength == pytest.approx(0.01)
    assert cfg.n_train == 200 and cfg.top_k == 7 and cfg.epochs == 3 and cfg.seed == 42
    assert cfg.optimizer == "adam" and cfg.parameterization == "ntk"
    assert type(check(width=np.int64(64)).width) is int


def test_normalisations():
    assert check(reg="none", reg_strength=5.0).reg_strength == 0.0
    assert check(n_train=100, batch_size=100).batch_size == 0
    assert check(n_train=100, batch_size=50).batch_size == 50
    assert check(n_train=100, batch_size=50).full_batch is False
    assert check(width=7.0).width == 7


@pytest.mark.parametrize("param,value,suggestion", [
    ("width", 10_000, 512),
    ("width", 1e12, 512),
    ("width", "1e400", 512),
    ("width", 0, 1),
    ("width", 2.6, 3),
    ("epochs", 10 ** 6, 500),
    ("lr", 1e9, 100.0),
    ("lr", float("inf"), 100.0),
    ("reg_strength", 1e9, 100.0),
    ("reg_strength", -0.5, 0.0),
    ("n_train", 10 ** 6, 9500),
])
def test_suggestion_is_nearest_allowed(param, value, suggestion):
    limits = Limits(max_width=512)
    with pytest.raises(ConfigError) as err:
        validate_config(limits=limits, **{param: value})
    e = err.value
    assert e.param == param and e.suggestion == suggestion, (param, value, e.suggestion)
    assert repr(suggestion) in str(e), str(e)
    # The suggestion itself is accepted.
    validate_config(limits=limits, **{param: suggestion})


def test_limits_from_env():
    assert Limits.from_env({}) == Limits()
    assert Limits.from_env({"NTK_HOSTED": "1"}) == Limits.hosted()
    assert Limits.from_env({"NTK_HOSTED": " TRUE "}) == Limits.hosted()
    assert Limits.from_env({"NTK_HOSTED": "0"}) == Limits()
    lim = Limits.from_env({"NTK_HOSTED": "yes", "NTK_MAX_WIDTH": "256", "NTK_MAX_N": "800",
                           "NTK_MAX_EPOCHS": "20", "NTK_MAX_TOPK": "5", "NTK_MAX_DENSE_N": "300",
                           "NTK_MAX_GRID": "2", "NTK_MAX_MEMORY_MB": " 123 "})
    assert lim == Limits(max_n=800, max_width=256, max_epochs=20, max_topk=5, max_dense_n=300,
                         max_grid=2, max_memory_mb=123, is_hosted=True)
    # A value of NTK_HOSTED that is neither on nor off is an error naming the variable.
    with pytest.raises(ConfigError) as err:
        Limits.from_env({"NTK_HOSTED": "maybe"})
    assert err.value.param == "NTK_HOSTED" and "unset" in err.value.allowed
    # Overrides apply on top of the non-hosted defaults too.
    assert Limits.from_env({"NTK_HOSTED": "0", "NTK_MAX_TOPK": "7"}) == Limits(max_topk=7)
    # The hard width cap wins over the environment; blank values are ignored.
    assert Limits.from_env({"NTK_MAX_WIDTH": "100000"}).max_width == 4096
    assert Limits.from_env({"NTK_MAX_N": "  "}) == Limits()
    with pytest.raises(ConfigError) as err:
        Limits.from_env({"NTK_MAX_N": "lots"})
    assert err.value.param == "NTK_MAX_N"


def test_hosted_limits_apply():
    hosted = Limits.hosted()
    with pytest.raises(ConfigError) as err:
        validate_config(width=2048, limits=hosted)
    assert err.value.suggestion == hosted.max_width and "[1, 1024]" in str(err.value)
    with pytest.raises(ConfigError) as err:
        validate_config(n_train=6000, n_val=100, limits=hosted)
    assert err.value.param == "n_train" and err.value.suggestion == hosted.max_n


def test_default_limits_come_from_environment(monkeypatch):
    monkeypatch.setenv("NTK_HOSTED", "1")
    monkeypatch.delenv("NTK_MAX_WIDTH", raising=False)
    with pytest.raises(ConfigError) as err:
        validate_config(width=2048)
    assert err.value.suggestion == 1024


@pytest.mark.parametrize("overrides", [dict(width=256), dict(width=64, epochs=100),
                                       dict(width=4, epochs=20, n_train=3000, n_val=100)])
def test_memory_budget_suggests_largest_fitting_value(overrides):
    limits = Limits(max_memory_mb=40)
    cfg = ExperimentConfig().replace(**overrides)
    assert runner.estimate_memory_mb(cfg, limits) > 40
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, limits=limits)
    e = err.value
    assert e.param in ("width", "epochs", "n_train") and "40 MB" in str(e), str(e)
    assert e.suggestion is not None and e.suggestion < getattr(cfg, e.param)
    fits = validate_config(cfg.replace(**{e.param: e.suggestion}), limits=limits)
    assert runner.estimate_memory_mb(fits, limits) <= 40
    with pytest.raises(ConfigError):
        validate_config(cfg.replace(**{e.param: e.suggestion + 1}), limits=limits)


def test_memory_budget_without_a_close_value():
    """No single parameter fits within 4× of its value: named, but nothing suggested."""
    with pytest.raises(ConfigError) as err:
        validate_config(width=512, epochs=100, limits=Limits(max_memory_mb=40))
    assert err.value.param == "width" and err.value.suggestion is None
    assert "40 MB" in str(err.value) and "allowed" in str(err.value)


def test_n_val_leaves_room_for_n_train():
    """Any n_val that validates must leave a non-empty n_train range: with n_val = 9999
    on the 10k bundled set, n_train's range becomes [2, 1] and its 'nearest allowed
    value' 1 is itself rejected."""
    try:
        validate_config(limits=LIMITS, n_val=9999, n_train=2, top_k=1)
    except ConfigError as e:
        assert e.param == "n_val", f"n_val=9999 accepted, then n_train rejected: {e}"
        return
    pytest.fail("n_val=9999 and n_train=2 exceed the 10,000-image pool but were accepted")


# ----------------------------------------------------------------------------------------
# Property-based: arbitrary field values.

INT_FIELDS = ("width", "depth", "n_train", "n_val", "epochs", "batch_size", "seed", "top_k", "patience")
FLOAT_FIELDS = ("reg_strength", "weight_decay", "lr")
CHOICE_FIELDS = {"reg": runner._config.REG_KINDS, "optimizer": runner._config.OPTIMIZERS,
                 "parameterization": runner._config.PARAMETERIZATIONS,
                 "dataset": runner._config.DATASETS, "arch": runner._config.ARCHS}

BOUNDARY_INTS = (-1, 0, 1, 2, 9, 10, 11, 100, 101, 500, 501, 512, 1000, 1001, 1024, 1025, 4096,
                 4097, 5000, 9000, 9990, 9998, 9999, 10_000, 10_001, 60_000, 70_000,
                 2 ** 31 - 1, 2 ** 31, 10 ** 12, 10 ** 400, -(10 ** 400))

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-5, max_value=5000),
    st.sampled_from(BOUNDARY_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1.0, max_value=200.0),
    st.text(max_size=12),
    st.sampled_from(["128", "1e-3", " l2 ", "L1", "none", "adam", "SGD", "ntk", "standard",
                     "full", "bundled", "0", "1e12", "nan", "inf", "-inf", "2.5", "1_000", "",
                     "1e400", " 7 ", "0x10", "9999"]),
    st.sampled_from(BOUNDARY_INTS).map(str),
    st.integers(min_value=-5, max_value=5000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
VALID = {
    "width": st.integers(1, 4096), "n_train": st.integers(2, 9990), "n_val": st.integers(10, 10_000),
    "reg": st.sampled_from(CHOICE_FIELDS["reg"]), "reg_strength": st.floats(0.0, 100.0),
    "weight_decay": st.floats(0.0, 100.0),
    "lr": st.floats(1e-6, 100.0), "epochs": st.integers(1, 500),
    "optimizer": st.sampled_from(CHOICE_FIELDS["optimizer"]), "batch_size": st.integers(0, 500),
    "seed": st.integers(0, 2 ** 31 - 1),
    "parameterization": st.sampled_from(CHOICE_FIELDS["parameterization"]),
    "top_k": st.integers(1, 100), "patience": st.integers(1, 1000),
    "dataset": st.sampled_from(CHOICE_FIELDS["dataset"]),
    "arch": st.sampled_from(CHOICE_FIELDS["arch"]), "depth": st.integers(1, 4),
}
assert set(VALID) == set(FIELDS)


def mostly_valid(field):
    """60% a plausible value, 20% the same as a string (URL style), 20% arbitrary.
    (``st.one_of`` would flatten ``values`` into its branches and drown the valid ones.)"""
    return st.integers(0, 9).flatmap(
        lambda i: VALID[field] if i < 6 else VALID[field].map(str) if i < 8 else values)
# Arbitrary dicts, and dicts whose fields are mostly plausible (so that validation gets
# past the first fields and exercises the later, dependent bounds and the memory check).
configs = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=len(FIELDS)),
    st.fixed_dictionaries({}, optional={f: mostly_valid(f) for f in FIELDS}),
)
limit_sets = st.sampled_from([Limits(), Limits.hosted(), Limits(max_width=512, max_topk=30, max_memory_mb=40)])


def assert_satisfies_bounds(cfg: ExperimentConfig, limits: Limits):
    for f in INT_FIELDS:
        assert type(getattr(cfg, f)) is int, (f, getattr(cfg, f))
    for f in FLOAT_FIELDS:
        assert type(getattr(cfg, f)) is float and math.isfinite(getattr(cfg, f)), f
    for f, choices in CHOICE_FIELDS.items():
        assert getattr(cfg, f) in choices, (f, getattr(cfg, f))
    pool = runner._config.POOL_SIZE[cfg.dataset]
    assert 1 <= cfg.width <= limits.max_width
    assert 1 <= cfg.depth <= 4 and (cfg.arch == "mlp" or (cfg.depth == 1 and cfg.width <= runner.MAX_CNN_CHANNELS))
    assert 10 <= cfg.n_val <= 10_000
    assert 2 <= cfg.n_train <= min(limits.max_n, pool - cfg.n_val)
    assert cfg.n_train + cfg.n_val <= pool
    assert 0.0 <= cfg.reg_strength <= 100.0
    assert cfg.reg != "none" or cfg.reg_strength == 0.0
    assert 0.0 <= cfg.weight_decay <= 100.0 and math.copysign(1.0, cfg.weight_decay) == 1.0
    assert 0.0 < cfg.lr <= 100.0
    assert 1 <= cfg.epochs <= limits.max_epochs
    assert 0 <= cfg.batch_size < cfg.n_train
    assert 0 <= cfg.seed <= 2 ** 31 - 1
    assert 1 <= cfg.top_k <= min(limits.max_topk, cfg.n_train)
    assert 1 <= cfg.patience <= 1000


# derandomize: the same 300 examples on every run, so CI never flips on a lucky draw.
@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(raw=configs, limits=limit_sets)
def test_validate_config_total(raw, limits):
    """validate_config is total: a config within every documented bound (and idempotent),
    or a ConfigError naming a field, whose message states the allowed range, and whose
    suggestion (if any) is itself accepted for that field."""
    try:
        cfg = validate_config(raw, limits=limits)
    except ConfigError as e:
        assert e.param in FIELDS, f"ConfigError names {e.param!r} for {raw!r}"
        assert "allowed" in str(e), str(e)
        assert e.allowed and e.allowed in str(e)
        if e.suggestion is not None:
            fixed = dict(raw, **{e.param: e.suggestion})
            try:
                validate_config(fixed, limits=limits)
            except ConfigError as e2:
                assert e2.param != e.param, (
                    f"suggested {e.param}={e.suggestion!r} is rejected again: {e2}")
        return
    assert_satisfies_bounds(cfg, limits)
    assert runner.estimate_memory_mb(cfg, limits) <= limits.max_memory_mb
    assert validate_config(cfg, limits=limits) == cfg, "validation is not idempotent"
    assert validate_config(cfg.to_dict(), limits=limits) == cfg


# Deterministic grid: every field × awkward values, everything else at its default.
SPECIAL_VALUES = (None, True, False, 0, -1, 1, 2, 2.5, -0.0, 1e-300, 1e300, 10 ** 400,
                  -(10 ** 400), 2 ** 63, math.nan, math.inf, -math.inf, "", " ", "abc", "nan",
                  "inf", "-inf", "1e400", "1e-400", " 7 ", "7.0", "0x10", "1_0", b"7", [], {},
                  (1,), 1j, np.int64(7), np.float32(0.5), np.float64(3.0), np.nan)
# Changing one field from its default can make a later, dependent field invalid.
DEPENDENTS = {"n_train": {"top_k"}, "n_val": {"n_train"}, "arch": {"width"}}


def _short(value) -> str:
    r = repr(value)
    return r if len(r) <= 30 else r[:12] + f"...<{len(r)} chars>"


@pytest.mark.parametrize("field", FIELDS)
def test_each_field_with_awkward_values(field):
    problems = []
    for value in SPECIAL_VALUES:
        try:
            cfg = check(**{field: value})
        except ConfigError as e:
            if e.param not in {field} | DEPENDENTS.get(field, set()) or "allowed" not in str(e):
                problems.append(f"{field}={_short(value)}: ConfigError names {e.param!r}: {e}")
            continue
        except Exception as e:  # noqa: BLE001 - the point: nothing else may escape
            problems.append(f"{field}={_short(value)}: {type(e).__name__}: {e}")
            continue
        try:
            assert_satisfies_bounds(cfg, LIMITS)
        except AssertionError as e:
            problems.append(f"{field}={_short(value)} accepted out of bounds: {cfg} ({e})")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------------------
# Decoupled weight decay: validated once, in the URL, the CLI and every regulariser label.

def test_weight_decay_validated_with_named_range():
    assert check().weight_decay == 0.0
    assert check(weight_decay="1e-2").weight_decay == pytest.approx(1e-2)
    assert math.copysign(1.0, check(weight_decay=-0.0).weight_decay) == 1.0  # one cache key
    assert runner.bounds(LIMITS).weight_decay == (0.0, 100.0)
    with pytest.raises(ConfigError) as err:
        check(weight_decay=-0.5)
    assert str(err.value) == ("weight_decay=-0.5 is not allowed; allowed: number in [0, 100] "
                              "(nearest allowed value: 0.0)")
    with pytest.raises(ConfigError) as err:
        check(weight_decay=1e3)
    assert err.value.suggestion == 100.0


@pytest.mark.parametrize("kw,optimizer,label", [
    ({}, "SGD", "no regularization"),
    ({"reg": "l2", "reg_strength": 1e-3}, "SGD", "L2 λ=0.001 in the loss"),
    ({"weight_decay": 0.01}, "SGD", "decoupled weight decay wd=0.01"),
    ({"optimizer": "adam", "weight_decay": 0.01}, "AdamW", "decoupled weight decay wd=0.01"),
    ({"optimizer": "adam", "reg": "l1", "reg_strength": 2e-4, "weight_decay": 0.1}, "AdamW",
     "L1 λ=0.0002 in the loss + decoupled weight decay wd=0.1"),
    ({"optimizer": "adam", "reg": "l2", "reg_strength": 1e-3}, "Adam", "L2 λ=0.001 in the loss"),
])
def test_regularizer_and_optimizer_labels(kw, optimizer, label):
    cfg = check(**kw)
    assert cfg.optimizer_label == optimizer and cfg.regularizer_label == label


def test_weight_decay_in_url_and_cli():
    from runner import cli
    from ui import params as P

    issues, accepted = P.check_url({"wd": ["0.05"]}, LIMITS)
    assert not issues and accepted == {"wd": 0.05}
    assert P.config_from_values({**P.defaults(LIMITS), "wd": 0.05}, LIMITS).weight_decay == 0.05
    issues, _ = P.check_url({"wd": ["-1"]}, LIMITS)
    assert [(i.name, i.allowed) for i in issues] == [("wd (weight_decay)", "number in [0, 100]")]
    assert "**wd (weight_decay)**" in issues[0].message()
    plan = cli.plan(["run", "--optimizer", "adam", "--weight-decay", "1e-2"])
    assert [c.weight_decay for c in plan.configs] == [0.01]
    assert plan.configs[0].optimizer_label == "AdamW"
    with pytest.raises(ConfigError) as err:
        cli.plan(["run", "--weight-decay", "-1e-3"])
    assert err.value.param == "weight_decay" and "[0, 100]" in str(err.value)


def test_weight_decay_reaches_training_through_the_runner():
    """The runner passes wd to training: with SGD, wd = 2λ reproduces L2 λ (if wd were
    dropped, the wd run would be unregularised SGD and differ), and the two configs have
    different cache keys."""
    base = dict(width=4, n_train=24, n_val=10, epochs=2, top_k=2, lr=0.5)
    l2 = check(**base, reg="l2", reg_strength=0.05)
    wd = check(**base, weight_decay=0.1)
    assert runner._run._key_config(l2) != runner._run._key_config(wd)
    r_l2, r_wd = runner.run_configs([l2, wd], LIMITS, store=None)
    for k in ("train_loss", "val_loss", "weight_norm", "rel_change"):
        np.testing.assert_allclose(r_wd.metrics[k], r_l2.metrics[k], rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(r_wd.lambda_max, r_l2.lambda_max, rtol=1e-4)
