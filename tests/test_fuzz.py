"""Fuzzing every entry point with hypothesis: each CLI flag and each URL parameter of every
page. Bad input must end as a ConfigError / usage error naming the parameter (CLI: exit 2,
one line), or a warning in the page, never as another exception or a traceback."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runner
from runner import cli
from ui import nav
from ui import params as P

# Awkward spellings on top of random text: numbers at and beyond every bound, exponents,
# signs, unicode digits, NaN/inf, whitespace, empty.
AWKWARD = st.sampled_from(["", " ", "-1", "-3", "0", "1", "2", "-1e-3", "1e-12", "1e12", "1e400",
                           "-1e400", "nan", "NaN", "inf", "-inf", "0x10", "1_000", "٣", "3.5",
                           "4097", "2147483648", "abc", "None", "true", "l3", "standard", "NTK",
                           "adam", "L2", "Θ/n", "--", "-", "1,2", "1 2"])
VALUE = st.one_of(AWKWARD, st.text(max_size=12), st.integers(-10**6, 10**12).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr))
FLAGS = [f for f, *_ in cli.CONFIG_FLAGS]
ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _plan_outcome(argv: list[str]) -> str:
    """'ok', or the error's one-line message; anything else raises (and fails the test)."""
    try:
        p = cli.plan(argv)
    except cli._UsageError as exc:
        return f"usage: {exc}"
    except runner.ConfigError as exc:
        return f"config: {exc.param}"
    except SystemExit as exc:  # argparse's --help/--version paths
        return f"exit {exc.code}"
    assert all(isinstance(c, runner.ExperimentConfig) for c in p.configs)
    return "ok"


@SETTINGS
@given(st.sampled_from(FLAGS), VALUE, st.sampled_from(["run", "sweep"]))
def test_every_cli_flag_fuzzed_is_accepted_or_named(flag, value, command):
    extra = ["--vary", "l2", "--values", "0"] if command == "sweep" else []
    out = _plan_outcome([command, *extra, flag, value])
    assert out == "ok" or out.startswith(("usage:", "config:")), out
    if out.startswith("config:"):
        field = dict((f, fld) for f, fld, *_ in cli.CONFIG_FLAGS)[flag]
        # The error names the fuzzed parameter (or one it constrains, e.g. batch/top-k by n).
        assert out.split(": ")[1] in (field, "n_train", "batch_size", "top_k", "width", "epochs"), out


@SETTINGS
@given(st.sampled_from(["width", "samples", "l1", "l2", "lr", "seed", "foo", ""]),
       st.lists(VALUE, min_size=0, max_size=20), st.sampled_from(["csv", "json", "xml", ""]))
def test_sweep_flags_fuzzed(vary, values, fmt):
    out = _plan_outcome(["sweep", "--vary", vary, "--format", fmt, "--values", *values])
    assert out == "ok" or out.startswith(("usage:", "config:")), out


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(FLAGS), AWKWARD)
def test_cli_main_turns_bad_flags_into_exit_2_and_one_line(flag, value):
    # The real main() on input that fails validation (no computation happens).
    argv = ["run", flag, value, "--width", "-3"] if flag != "--width" else ["run", flag, "-3"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err.getvalue(), err.getvalue()


URL = st.dictionaries(st.sampled_from(P.URL_KEYS + ("junk", "page", "")),
                      st.one_of(VALUE, st.lists(VALUE, max_size=3)), max_size=len(P.URL_KEYS))


@SETTINGS
@given(URL, st.sampled_from([runner.Limits(), runner.Limits.hosted()]))
def test_every_url_parameter_fuzzed_is_accepted_or_reported(raw, limits):
    issues, accepted = P.check_url(raw, limits)
    assert {i.key for i in issues} | set(accepted) <= set(P.URL_KEYS) & set(raw)
    for i in issues:  # each message names the parameter and its allowed range
        text = i.message()
        assert i.name in text and "allowed" in text
    # The accepted values alone, on top of the defaults, give a valid config or a
    # ConfigError (e.g. top-k > n), which the sidebar reports; nothing else.
    values = {**P.defaults(limits), **accepted}
    try:
        cfg = P.config_from_values(values, limits)
    except runner.ConfigError as exc:
        assert exc.param in runner.ExperimentConfig.__dataclass_fields__, exc.param
    else:
        assert cfg == runner.validate_config(cfg, limits)


# A few fuzzed URLs through the real app, on every page (including pages added later:
# the list comes from the navigation). Only invalid values are sent, so the page falls
# back to the small base config instead of starting new computations.
SMALL = {"width": "8", "samples": "100", "epochs": "2"}


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p, *_ in nav.PAGES])
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_url_on_every_page_never_raises(page, data, request, monkeypatch):
    from streamlit.testing.v1 import AppTest

    if page == "pages/findings.py":  # the quick protocol, computed once for the session
        monkeypatch.setenv("NTK_CACHE_DIR", str(request.getfixturevalue("quick_findings")[0]))
    if page in ("pages/kernel_motion.py", "pages/infinite_width.py"):  # their tiny protocol, cached
        monkeypatch.setenv("NTK_CACHE_DIR", str(request.getfixturevalue("tiny_theory")[0]))
        monkeypatch.setenv("NTK_THEORY_QUICK", "tiny")
    if page in ("pages/linearized.py", "pages/stability.py"):  # their tiny protocol, cached
        monkeypatch.setenv("NTK_CACHE_DIR", str(request.getfixturevalue("tiny_dynamics")[0]))
        monkeypatch.setenv("NTK_THEORY_QUICK", "tiny")

    limits = runner.Limits.from_env()
    key = data.draw(st.sampled_from(P.URL_KEYS))
    value = data.draw(VALUE.filter(lambda v: bool(P.check_url({key: v}, limits)[0])))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update({**SMALL, key: value})
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = " ".join(w.value for w in at.warning)
    assert f"**{P.fields(limits)[[f.key for f in P.fields(limits)].index(key)].shown_name}**" in warnings
