"""The theory pages "Infinite width" and "Kernel motion" in Streamlit's AppTest, through
app.py and its navigation (entries ("pages/infinite_width.py", "Infinite width") and
("pages/kernel_motion.py", "Kernel motion") in ui/nav.py).

The pages serve the quick protocol under NTK_THEORY_QUICK=tiny from the cache the session
fixture ``tiny_theory`` filled through the CLI (the real runner and cache; computing them
is tested there), so a visit and a rerun both load it. Every chart has tooltips and a CSV download,
the verdicts are the runner's, and caps too small for a protocol give a message, not a
traceback.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from runner._verdicts import VERDICTS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 600
PAGES = {
    # page → (title, minimum number of charts, the verdict claims it shows)
    "pages/infinite_width.py": ("Infinite width", 4,
                                {"inf_ntk_rate", "inf_nngp_rate", "inf_nngp_logits_rate",
                                 "inf_outputs_rate", "finite_approach"}),
    "pages/kernel_motion.py": ("Kernel motion", 5,
                               {"kernel_change_exponent", "velocity_fast_then_slow",
                                "alignment_rises", "alignment_less_for_wider"}),
}


@pytest.fixture(autouse=True)
def _env(tiny_theory, monkeypatch):
    cache_dir, _, _ = tiny_theory
    monkeypatch.setenv("NTK_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("NTK_THEORY_QUICK", "tiny")
    for var in ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_EPOCHS", "NTK_MAX_TOPK",
                "NTK_MAX_DENSE_N", "NTK_MAX_GRID", "NTK_MAX_MEMORY_MB"):
        monkeypatch.delenv(var, raising=False)


def open_page(page: str) -> tuple[AppTest, float]:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    t0 = time.monotonic()
    at.switch_page(page)
    at.run()
    return at, time.monotonic() - t0


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def check_page(at: AppTest, page: str) -> None:
    title, min_charts, claims = PAGES[page]
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at.error)
    assert [t.value for t in at.title] == [title]
    md = texts(at.markdown)
    assert "**Question.**" in md and "**What to look for.**" in md
    assert "The paper's result" in texts(at.info)
    charts = list(at.get("vega_lite_chart"))
    assert len(charts) >= min_charts
    for c in charts:
        assert "tooltip" in json.dumps(json.loads(c.proto.spec))
    assert len(at.get("download_button")) == len(charts), "one CSV download per chart"
    summary = at.dataframe[0].value   # the live-verdicts summary table
    assert set(summary["verdict"].str.replace(" ", "_")) <= set(VERDICTS)
    assert len(summary) >= len(claims)
    assert "raw traced" in texts(at.caption).lower() or "mean over the 10 logits" in texts(at.caption)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_loads_from_the_cache_with_charts_csv_and_verdicts(page, tiny_theory):
    at, first = open_page(page)
    check_page(at, page)
    assert "loaded from the cache" in texts(at.caption)
    assert "widths [16, 32, 64]" in texts(at.caption)
    # The verdicts shown are the ones the CLI printed for the same protocol.
    cli = tiny_theory[1]["kernel-motion" if "kernel" in page else "infinite-width"]
    shown = at.dataframe[0].value
    assert list(shown["verdict"]) == [v["verdict"].replace("_", " ") for v in cli["verdicts"]]
    t0 = time.monotonic()
    at.run()                       # a rerun
    again = time.monotonic() - t0
    check_page(at, page)
    print(f"{page}: first visit {first:.1f} s, rerun {again:.2f} s")


def test_kernel_motion_switches_the_epoch_charts_to_standard_parameterization():
    at, _ = open_page("pages/kernel_motion.py")
    at.radio(key="km_param").set_value("standard").run()
    check_page(at, "pages/kernel_motion.py")
    assert any("standard param." in json.dumps(json.loads(c.proto.spec))
               for c in at.get("vega_lite_chart"))


@pytest.mark.parametrize("page", list(PAGES))
def test_a_width_cap_below_the_grid_is_a_message_not_a_traceback(page, monkeypatch):
    monkeypatch.setenv("NTK_MAX_WIDTH", "32")
    at, _ = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert "does not fit this server's limits" in texts(at.error)
    assert "width" in texts(at.error)
