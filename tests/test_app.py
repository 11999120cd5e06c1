"""End-to-end tests of the Streamlit app with streamlit.testing.v1.AppTest.

The real runner, engine and disk cache run underneath (no mocks); configs are tiny
(width 16, n = 200, 3 epochs) and all tests share one results cache directory, so a
result computed by one test is a cache hit for the next.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.runtime.memory_media_file_storage import _calculate_file_id
from streamlit.testing.v1 import AppTest

import runner
from ui import data as ui_data
from ui import params as ui_params

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
SMALL = {"width": "16", "samples": "200", "epochs": "3"}
TIMEOUT = 180

PAGES = {
    # page → (minimum number of charts, page-widget values that keep the sweep small)
    "pages/spectrum_vs_l2.py": (4, {"l2_values": "0, 1e-3, 1e-1"}),
    "pages/training_dynamics.py": (4, {}),
    "pages/regularization_grid.py": (2, {"grid_values_l2": "1e-3, 1e-1"}),
    "pages/training_size.py": (2, {"size_values": "100, 200"}),
    "pages/width.py": (3, {"width_values": [8, 16]}),
    "pages/spectrum_explorer.py": (3, {}),
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ntk-cache")


@pytest.fixture(autouse=True)
def _env(cache_dir, monkeypatch):
    monkeypatch.setenv("NTK_CACHE_DIR", str(cache_dir))
    for var in ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_EPOCHS", "NTK_MAX_TOPK",
                "NTK_MAX_DENSE_N", "NTK_MAX_GRID"):
        monkeypatch.delenv(var, raising=False)


def open_app(query: dict | None = None, page: str | None = None, state: dict | None = None) -> AppTest:
    """Runs app.py with URL query parameters, then optionally switches page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(SMALL if query is None else query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page:
        for k, v in (state or {}).items():
            at.session_state[k] = v
        at.switch_page(page)
        at.run()
    return at


def charts(at: AppTest) -> list:
    return list(at.get("vega_lite_chart"))


def chart_frames(chart) -> list[pd.DataFrame]:
    """The datasets a Vega-Lite chart element carries (what the browser plots)."""
    return [convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets]


def chart_data(chart) -> pd.DataFrame:
    frames = chart_frames(chart)
    assert len(frames) == 1, "each chart plots exactly one data frame"
    return frames[0]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def assert_page_ok(at: AppTest, min_charts: int) -> list:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at.error)
    cs = charts(at)
    assert len(cs) >= min_charts
    for c in cs:
        spec = json.loads(c.proto.spec)
        assert "tooltip" in json.dumps(spec), "every chart has tooltips"
        df = chart_data(c)
        assert len(df) > 0
    assert len(at.get("download_button")) == len(cs), "one CSV download per chart"
    return cs


# ------------------------------------------------------------------ pages

def test_home_renders_with_sidebar_from_url():
    at = open_app()
    assert not at.exception
    assert any("NTK" in t.value for t in at.title)
    assert len(at.get("latex")) >= 2
    assert at.number_input(key="width").value == 16
    assert at.number_input(key="samples").value == 200
    assert at.number_input(key="epochs").value == 3
    assert not at.warning and not at.error
    assert "width 16, n=200, 3 epochs" in texts(at.caption)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_and_follows_the_sidebar(page):
    min_charts, state = PAGES[page]
    at = open_app(page=page, state=state)
    before = [chart_data(c) for c in assert_page_ok(at, min_charts)]
    # Every download button offers exactly the CSV of the chart next to it.
    for c, btn in zip(charts(at), at.get("download_button")):
        assert_download_is_chart_data(c, btn)
    # The cache status is shown.
    assert any("runs:" in line for line in status_lines(at))

    at.number_input(key="seed").set_value(1).run()
    after = [chart_data(c) for c in assert_page_ok(at, min_charts)]
    assert any(not _same(a, b) for a, b in zip(before, after)), "seed change must change the data"


def status_lines(at) -> list[str]:
    """The engine's outcome lines: a status box's label where work ran, a caption on a
    page whose results all came from the cache."""
    return [s.proto.label for s in at.get("status")] + [str(c.value) for c in at.caption]


def assert_download_is_chart_data(chart, button) -> None:
    """The button's file is the CSV of the chart's data: Streamlit names media files by
    a hash of (bytes, mimetype, file name), and our file name is the key minus "dl_"."""
    csv = chart_data(chart).to_csv(index=False).encode("utf-8")
    file_id = button.proto.url.rsplit("/", 1)[1].split(".")[0]
    assert button.key.startswith("dl_")
    assert file_id == _calculate_file_id(csv, "text/csv", button.key[3:] + ".csv")


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return False
    return a.to_csv(index=False) == b.to_csv(index=False)


def test_width_change_changes_dynamics_and_second_visit_hits_cache():
    at = open_app(page="pages/training_dynamics.py")
    lam16 = chart_data(charts(at)[0])
    at.number_input(key="width").set_value(8).run()
    assert_page_ok(at, 4)
    lam8 = chart_data(charts(at)[0])
    assert not _same(lam16, lam8)
    # A fresh session with the same config reads the result from the disk cache.
    again = open_app(page="pages/training_dynamics.py")
    assert any("from cache" in line for line in status_lines(again))
    # Nothing was computed, so no status box was opened: the outcome is one caption line.
    assert not again.get("status")
    pd.testing.assert_frame_equal(chart_data(charts(again)[0]), lam16)


def y_title(chart) -> str:
    """The y-axis title of a chart's first layer, lines joined by spaces."""
    spec = json.loads(chart.proto.spec)
    while "layer" in spec or "spec" in spec:
        spec = spec["layer"][0] if "layer" in spec else spec["spec"]
    title = spec["encoding"]["y"]["title"]
    return " ".join(title) if isinstance(title, list) else title


def test_normalization_divides_by_n_and_is_named_on_the_axis():
    page = "pages/training_dynamics.py"
    at = open_app(page=page)
    raw = chart_data(charts(at)[0])
    assert y_title(charts(at)[0]) == "top-k λ_j of Θ (traced: mean over 10 logits, standard param.)"
    at.radio(key="norm").set_value("Θ/n").run()
    per_n = chart_data(charts(at)[0])
    assert y_title(charts(at)[0]) == "top-k λ_j of Θ/n (traced: mean over 10 logits, standard param.)"
    np.testing.assert_allclose(per_n["eigenvalue"], raw["eigenvalue"] / 200, rtol=1e-12)
    at.toggle(key="dyn_topk").set_value(False).run()
    assert y_title(charts(at)[0]) == "λ_max of Θ/n (traced: mean over 10 logits, standard param.)"
    assert set(chart_data(charts(at)[0])["rank"]) == {1}


def test_spectrum_vs_l2_plots_one_series_per_lambda():
    at = open_app(page="pages/spectrum_vs_l2.py", state=PAGES["pages/spectrum_vs_l2.py"][1])
    topk = chart_data(charts(at)[0])
    assert sorted(topk["l2"].unique()) == [0, 1e-3, 1e-1]
    assert topk.groupby("l2").size().eq(10).all()  # top-10 per λ
    lam_max = chart_data(charts(at)[1])
    assert list(lam_max["l2"]) == [0, 1e-3, 1e-1]
    # The λ_max chart and the top-k chart come from different frames: they must agree.
    top = topk.groupby("l2")["eigenvalue"].max()
    np.testing.assert_allclose(lam_max.set_index("l2")["lambda_max"].loc[top.index], top, rtol=1e-12)
    cdf = chart_data(charts(at)[2])
    for _, g in cdf.groupby("series"):
        # The CDF spans the whole spectrum: its last point is the λ_max of one of the runs
        # (dense float64 eigvalsh vs float32 Lanczos: 1e-6 relative).
        assert g["cdf"].is_monotonic_increasing
        rel = np.abs(lam_max["lambda_max"].to_numpy() / g["eigenvalue"].max() - 1)
        assert rel.min() < 1e-6, rel


def test_width_page_has_analytic_reference():
    at = open_app(page="pages/width.py", state={**PAGES["pages/width.py"][1], "width_values": [1, 8, 16]})
    df = chart_data(charts(at)[0])
    assert list(df["width"]) == [1, 8, 16]
    assert df["analytic_lambda_max"].notna().all()
    spec = json.dumps(json.loads(charts(at)[0].proto.spec), ensure_ascii=False)
    assert "λ_max of the expected kernel E[Θ] at init (standard param.)" in spec
    rank = chart_data(charts(at)[2])
    # Rank is judged on the whole spectrum: the plotted numerical rank is the number of
    # eigenvalues above the round-off floor of that width's own dense spectrum.
    lim = runner.Limits()
    e = int(rank["epoch"].iloc[0])
    got = rank[rank["measure"].str.startswith("numerical rank")].set_index("width")["value"]
    for w in (1, 8, 16):
        cfg = runner.validate_config({"width": w, "n_train": 200, "epochs": 3}, lim)
        spec = runner.spectrum_at(cfg, e, lim, store=runner.open_store())
        assert got[w] == int(np.sum(spec.eigenvalues > spec.floor))
    assert got[1] > 1  # width 1 is not rank-1 on this data (the input Gram survives)
    assert "Width 1 rank-1" in texts(at.markdown) and "Dip, rise, flatten" in texts(at.markdown)


def test_training_size_shows_fit():
    at = open_app(page="pages/training_size.py", state=PAGES["pages/training_size.py"][1])
    df = chart_data(charts(at)[0])
    assert list(df["n"]) == [100, 200]
    assert "lambda_max_fit" in df
    labels = [m.label for m in at.metric]
    assert "R² of the line" in labels and "slope per sample" in labels
    at.radio(key="size_norm_0").set_value("Θ/n").run()
    per_n = chart_data(charts(at)[0])
    np.testing.assert_allclose(per_n["lambda_max"], df["lambda_max"] / df["n"], rtol=1e-12)
    assert y_title(charts(at)[0]).startswith("λ_max of Θ/n")


def test_spectrum_explorer_compares_two_configs():
    at = open_app(page="pages/spectrum_explorer.py")
    at.radio(key="exp_compare").set_value("another epoch").run()
    assert_page_ok(at, 3)
    cdf = chart_data(charts(at)[1])
    assert cdf["series"].nunique() == 2
    assert len(at.metric) == 2


def test_page_run_without_app_py_reruns_through_app_py():
    """AppTest, like a fresh server given a deep link, starts each run in Streamlit's
    pages/-folder mode, which runs the page file without app.py; the page then reruns
    through app.py (ui.sidebar.current), so the sidebar and charts are app.py's."""
    at = open_app(page="pages/training_dynamics.py")
    assert_page_ok(at, 4)
    assert at.number_input(key="width").value == 16
    at.number_input(key="seed").set_value(2).run()
    assert_page_ok(at, 4)
    assert at.number_input(key="seed").value == 2


def test_hosted_limits_bound_the_widgets(monkeypatch):
    monkeypatch.setenv("NTK_HOSTED", "1")
    at = open_app({"width": "2048"})
    assert "**width**=`2048`" in texts(at.warning) and "[1, 1024]" in texts(at.warning)
    assert at.number_input(key="width").proto.max == 1024
    at.switch_page("pages/width.py")
    at.session_state["width_values"] = [8, 16]
    at.query_params.update(SMALL)
    at.number_input(key="width").set_value(16)
    at.number_input(key="samples").set_value(200)
    at.number_input(key="epochs").set_value(3)
    at.run()
    assert_page_ok(at, 3)
    assert max(at.multiselect(key="width_values").options, key=int) == "1024"


def test_spectrum_explorer_uses_slq_above_the_dense_limit(monkeypatch):
    monkeypatch.setenv("NTK_MAX_DENSE_N", "100")
    at = open_app(page="pages/spectrum_explorer.py")
    assert_page_ok(at, 3)
    assert "stochastic Lanczos quadrature" in texts(at.caption)
    cdf = chart_data(charts(at)[1])
    assert set(cdf["method"]) == {"slq"}
    assert cdf["cdf"].iloc[-1] == pytest.approx(1.0, abs=0.05)
    density = chart_data(charts(at)[0])
    # A density per decade integrates to ~1 over log10 λ (the grid pads both ends).
    x = np.log10(density["eigenvalue"].to_numpy())
    y = density["density_per_decade"].to_numpy()
    assert float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x))) == pytest.approx(1.0, abs=0.05)


# ------------------------------------------------------------------ untrusted input

@pytest.mark.parametrize("key,value,name,default", [
    ("width", "-3", "width", 128),
    ("samples", "1e12", "samples (n_train)", 1000),
    ("lr", "abc", "lr", 0.1),
    ("topk", "0", "topk (top_k)", 10),
    ("reg", "l3", "reg", "none"),
    ("norm", "x", "norm", "Θ"),
])
def test_bad_query_param_warns_and_falls_back(key, value, name, default):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params[key] = value
    at.run()
    assert not at.exception
    shown = texts(at.warning) + texts(at.error)
    assert f"**{name}**=`{value}`" in shown and "allowed" in shown
    widget = at.radio(key=key) if key in ("reg", "norm") else at.number_input(key=key)
    assert widget.value == default
    # The message stays while the config is unchanged (e.g. after a rerun).
    at.run()
    assert f"**{name}**" in texts(at.warning)


def test_bad_query_params_together_name_range_and_nearest_value():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"width": "-3", "samples": "1e12", "lr": "abc", "evil": "1"})
    at.run()
    assert not at.exception
    shown = texts(at.warning)
    assert "integer in [1, 4096]" in shown and "nearest allowed value: `1`" in shown
    assert "integer in [2, 9500]" in shown and "nearest allowed value: `9500`" in shown
    assert "**lr**=`abc`" in shown and "number in (0, 100]" in shown
    assert "evil" not in shown


def test_lenient_spellings_are_accepted():
    at = open_app({**SMALL, "reg": "l2", "l": "0.01", "param": "NTK", "opt": "Adam"})
    assert not at.warning and not at.error
    assert at.radio(key="reg").value == "l2"
    assert at.radio(key="param").value == "ntk"
    assert at.radio(key="opt").value == "adam"
    assert at.number_input(key="l").value == pytest.approx(0.01)


def test_inconsistent_settings_fall_back_to_last_valid_config():
    at = open_app({**SMALL, "samples": "5", "topk": "10"})
    shown = texts(at.error)
    assert "top_k=10" in shown and "allowed" in shown
    assert not at.exception


def test_request_over_memory_cap_falls_back_with_message(monkeypatch):
    monkeypatch.setenv("NTK_MAX_MEMORY_MB", "100")
    at = open_app({"width": "4096"}, page="pages/training_dynamics.py")
    assert not at.exception
    assert "width=4096" in texts(at.error) and "MB" in texts(at.error)
    assert "Sidebar config: MLP 1×128" in texts(at.caption)


def test_bad_sweep_values_show_error_and_page_still_renders():
    at = open_app(page="pages/spectrum_vs_l2.py", state={"l2_values": "0, abc"})
    assert not at.exception
    assert "l2='abc'" in texts(at.error)
    assert at.title and at.text_input(key="l2_values")
    at.text_input(key="l2_values").set_value("-1").run()
    assert not at.exception
    assert "l2=-1" in texts(at.error) and "allowed" in texts(at.error)


def test_divergence_is_reported_with_curves_up_to_there():
    at = open_app({**SMALL, "lr": "100"}, page="pages/training_dynamics.py")
    assert not at.exception
    warn = texts(at.warning)
    assert "diverged at epoch" in warn
    k = int(warn.split("diverged at epoch ")[1].split(":")[0])
    df = chart_data(charts(at)[0])
    assert df["epoch"].max() < k


def test_divergence_on_spectrum_page_uses_last_finite_checkpoint():
    at = open_app({**SMALL, "lr": "100"}, page="pages/spectrum_explorer.py")
    assert not at.exception and not at.error
    assert "diverged at epoch" in texts(at.warning)
    assert "(diverged at epoch" in texts(at.caption)
    assert_page_ok(at, 3)


def test_unusable_cache_is_reported_and_results_still_computed(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("NTK_CACHE_DIR", str(blocker))
    at = open_app(page="pages/training_dynamics.py")
    assert_page_ok(at, 4)
    assert any("cache disabled" in line for line in status_lines(at))
    assert "Cache disabled" in texts(at.sidebar.caption)


# ------------------------------------------------------------------ pure helpers

def test_check_url_whitelist_and_messages():
    limits = runner.Limits()
    issues, ok = ui_params.check_url({"width": "64", "samples": ["100", "1e12"], "junk": "x",
                                      "lr": "0", "batch": "50", "reg": "L1"}, limits)
    assert ok == {"width": 64, "batch": 50, "reg": "l1"}
    by_key = {i.key: i for i in issues}
    assert set(by_key) == {"samples", "lr"}
    assert by_key["samples"].suggestion == 9500
    assert "samples (n_train)" in by_key["samples"].message(1000)
    assert "Using samples=`1000` instead" in by_key["samples"].message(1000)


def test_url_values_are_echoed_safely():
    issues, _ = ui_params.check_url({"width": "`[x](http://example.com)`" + "9" * 100}, runner.Limits())
    text = issues[0].message(128)
    assert "`[x]" not in text and "…" in text and len(text) < 250


def test_check_url_is_about_ranges_not_memory():
    limits = runner.Limits.hosted()
    issues, ok = ui_params.check_url({"width": "1024", "samples": "5000", "epochs": "100",
                                      "batch": "5000", "topk": "30"}, limits)
    assert not issues and ok["width"] == 1024 and ok["samples"] == 5000


def test_parse_number_list():
    assert ui_params.parse_number_list("0, 1e-4;1e-3  1e-3", "l2") == [0, 1e-4, 1e-3]
    assert ui_params.parse_number_list("100, 200", "samples", integer=True) == [100, 200]
    with pytest.raises(runner.ConfigError, match="samples"):
        ui_params.parse_number_list("100.5", "samples", integer=True)
    with pytest.raises(runner.ConfigError, match="at most 2"):
        ui_params.parse_number_list("1, 2, 3", "l2", max_count=2)
    with pytest.raises(runner.ConfigError):
        ui_params.parse_number_list(" , ", "l2")
    with pytest.raises(runner.ConfigError):
        ui_params.parse_number_list("nan", "l2")


def test_linear_fit():
    fit = ui_data.linear_fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert fit["slope"] == pytest.approx(2) and fit["intercept"] == pytest.approx(1)
    assert fit["r2"] == pytest.approx(1)
    assert ui_data.linear_fit([1, 2, 4], [2, 4, 8])["loglog_slope"] == pytest.approx(1)
    assert math.isnan(ui_data.linear_fit([1], [1])["slope"])


@pytest.mark.parametrize("var,value", [("NTK_MAX_N", "abc"), ("NTK_HOSTED", "maybe"),
                                       ("NTK_MAX_WIDTH", "-1")])
@pytest.mark.parametrize("page", ["pages/home.py", "pages/width.py"])
def test_bad_environment_value_is_a_message_on_every_page(monkeypatch, var, value, page):
    monkeypatch.setenv(var, value)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(SMALL)
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = texts(at.error)
    assert var in errors and "allowed" in errors and "restart" in errors
    assert not charts(at)


def test_hosted_mode_hides_exception_details(monkeypatch):
    import streamlit as st

    monkeypatch.setenv("NTK_HOSTED", "1")
    open_app()
    assert st.get_option("client.showErrorDetails") == "none"
    monkeypatch.setenv("NTK_HOSTED", "0")
    open_app()
    assert st.get_option("client.showErrorDetails") == "full"


def test_eigenvalues_below_the_roundoff_floor_are_counted_not_drawn():
    # Width 2: the kernel has low rank, so most of its n eigenvalues are round-off.
    at = open_app({**SMALL, "width": "2"}, page="pages/spectrum_explorer.py")
    assert_page_ok(at, 3)
    lim = runner.Limits()
    cfg = runner.validate_config({"width": 2, "n_train": 200, "epochs": 3}, lim)
    spec = runner.spectrum_at(cfg, 3, lim, store=runner.open_store())
    assert spec.method == "dense" and spec.below_floor > 100  # the case is a real test
    assert f"{spec.below_floor} of 200 eigenvalues lie below the round-off floor" in texts(at.caption)
    cdf = chart_data(charts(at)[1])
    assert (cdf["eigenvalue"] > spec.floor).all()           # nothing below the floor is drawn
    assert len(cdf) == 200 - spec.below_floor                # every resolved one is
    assert cdf["cdf"].iloc[0] == pytest.approx((spec.below_floor + 1) / 200)  # but they are counted
    assert cdf["trace_cdf"].iloc[-1] == pytest.approx(1.0)
    assert cdf["trace_cdf"].is_monotonic_increasing


@pytest.mark.parametrize("key,value", [("width", "1e400"), ("seed", "-inf"), ("samples", "nan")])
def test_non_finite_url_value_of_an_integer_widget_is_reported_not_raised(key, value):
    """Streamlit 1.67 raises OverflowError seeding an int widget from ?width=1e400; the app
    must turn it into the usual "not allowed" warning and the default value."""
    at = open_app({**SMALL, key: value})
    assert f"URL parameter **{key}" in texts(at.warning)
    assert key not in at.query_params
    at.switch_page("pages/training_dynamics.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
