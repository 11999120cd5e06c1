"""End-to-end: a real `streamlit run app.py` server driven by Debian's chromium via Playwright.

Playwright cannot download its own browser here, so it launches the system chromium
(`tests/ensure_chromium.py` installs it). A screenshot of every page is saved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Screenshots land in artifacts/ (ignored); NTK_SCREENSHOT_DIR=docs/screenshots refreshes
# the ones the README shows.
SHOTS = ROOT / os.environ.get("NTK_SCREENSHOT_DIR", "artifacts/screenshots")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without the background-networking flags chromium keeps dialling Google on a closed network.
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage"]
# Small but real configs keep the whole browser suite near a minute or two.
SMALL = {"width": "16", "samples": "200", "epochs": "4", "topk": "5"}
PAGES = [  # (url path, screenshot name, a chart is expected)
    ("", "home", False),
    ("findings", "findings", True),
    ("spectrum_vs_l2", "spectrum_vs_l2", True),
    ("training_dynamics", "training_dynamics", True),
    ("regularization_grid", "regularization_grid", True),
    ("training_size", "training_size", True),
    ("width", "width", True),
    ("spectrum_explorer", "spectrum_explorer", True),
    ("kernel_motion", "kernel_motion", True),
    ("infinite_width", "infinite_width", True),
    ("linearized", "linearized", True),
    ("stability", "stability", True),
]
CHART = '[data-testid="stVegaLiteChart"]'
TIMEOUT_MS = 240_000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(cache_dir: Path, log: Path, server_log: Path):
    port = _free_port()
    env = {**os.environ, "NTK_CACHE_DIR": str(cache_dir), "NTK_COMPUTE_LOG": str(log),
           "JAX_PLATFORMS": "cpu",
           "NTK_THEORY_QUICK": "tiny"}  # theory pages: 3 widths, n=64, 5 epochs (seconds)
    out = open(server_log, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            out.close()
            pytest.fail("streamlit did not start:\n" + server_log.read_text()[-3000:])
        time.sleep(0.3)
    return proc, out, base


def _stop_server(proc, out) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    out.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, quick_findings):
    assert CHROMIUM, "Debian's chromium is required: run `python tests/ensure_chromium.py`"
    tmp = tmp_path_factory.mktemp("e2e")
    log = tmp / "compute.log"
    # The cache already holds the quick findings (computed once by the CLI in conftest), so
    # the Findings page shows them without recomputing.
    proc, out, base = _start_server(quick_findings[0], log, tmp / "server.log")
    yield {"base": base, "log": log, "proc": proc, "server_log": tmp / "server.log"}
    _stop_server(proc, out)


def _url(base: str, path: str, **params: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in {**SMALL, **params}.items())
    return f"{base}/{path}?{q}"


def _trainings(log: Path) -> int:
    if not log.exists():
        return 0
    return sum(int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("trainings"))


def _settle(page, want_chart: bool) -> None:
    """Waits until the script run has finished and, if expected, charts are drawn."""
    page.wait_for_selector('[data-testid="stSidebar"]', timeout=TIMEOUT_MS)
    if want_chart:
        page.wait_for_selector(f"{CHART} canvas, {CHART} svg", timeout=TIMEOUT_MS)
    # The running-man status widget shows while a script runs.
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)


def _no_exception(page, where: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, (
        f"{where}: {page.locator('[data-testid=stException]').first.inner_text()[:2000]}")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
        yield b
        b.close()


@pytest.mark.parametrize("path,name,chart", PAGES, ids=[p[1] for p in PAGES])
def test_every_page_renders_in_a_real_browser(server, browser, path, name, chart):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(_url(server["base"], path), timeout=TIMEOUT_MS)
        _settle(page, chart)
        _no_exception(page, name)
        if chart:
            assert page.locator(CHART).count() >= 1
        else:
            page.wait_for_selector(".katex", timeout=60_000)  # the formulas are typeset
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    finally:
        page.close()


def test_findings_page_shows_a_verdict_per_claim_from_the_cache(server, browser, quick_findings):
    _, out, _ = quick_findings
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        before = _trainings(server["log"])
        page.goto(f"{server['base']}/findings", timeout=TIMEOUT_MS)
        _settle(page, True)
        _no_exception(page, "findings")
        text = page.inner_text("body")
        assert "quick" in text and "loaded from the cache" in text
        for c in out["claims"]:  # every claim id and its verdict label is on the page
            assert c["id"] in text, c["id"]
        labels = {"holds": "holds", "holds_only_when": "holds only when",
                  "does_not_hold": "does not hold", "inconclusive": "inconclusive"}
        for v in {c["verdict"] for c in out["claims"]}:
            assert labels[v] in text, v
        assert page.locator(CHART).count() >= len(out["claims"])  # one evidence chart each
        assert _trainings(server["log"]) == before  # nothing was recomputed
    finally:
        page.close()


def test_deep_link_as_the_first_request_of_a_fresh_server(tmp_path, browser):
    # Streamlit's pages/-folder mode runs the page file without app.py on a fresh server:
    # the page must rerun through app.py (app.py's sidebar and menu, no exception).
    proc, out, base = _start_server(tmp_path / "cache", tmp_path / "log",
                                    tmp_path / "server.log")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(_url(base, "training_dynamics"), timeout=TIMEOUT_MS)
        _settle(page, True)
        _no_exception(page, "deep link")
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_text("Findings").count() >= 1        # app.py's menu titles
        assert sidebar.get_by_text("Hidden width").count() == 1    # app.py's sidebar, once
        assert "Page not found" not in page.inner_text("body")
        assert page.locator(CHART).count() >= 4
    finally:
        page.close()
        _stop_server(proc, out)


def test_changing_a_sidebar_control_redraws_with_new_data(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(_url(server["base"], "training_dynamics"), timeout=TIMEOUT_MS)
        _settle(page, True)
        before = page.locator(CHART).first.screenshot()
        seed = page.get_by_role("spinbutton", name="Seed")
        seed.fill("3")
        seed.press("Enter")
        page.wait_for_url("**seed=3**", timeout=TIMEOUT_MS)
        page.wait_for_timeout(300)
        _settle(page, True)
        _no_exception(page, "after changing the seed")
        after = page.locator(CHART).first.screenshot()
        assert before != after, "the chart did not change when the seed changed"
    finally:
        page.close()


def test_bad_url_values_are_explained_not_crashed(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server['base']}/training_dynamics?width=-3&samples=1e12&lr=abc&epochs=4",
                  timeout=TIMEOUT_MS)
        _settle(page, True)
        _no_exception(page, "bad URL")
        text = page.locator('[data-testid="stAlert"]').all_inner_texts()
        joined = "\n".join(text)
        for name in ("width", "samples", "lr"):
            assert name in joined, f"no message names {name}: {joined[:1000]}"
        assert "allowed" in joined
    finally:
        page.close()


def _pixels(png: bytes):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def _best_shift_changed(a: np.ndarray, b: np.ndarray, max_shift: int = 1) -> float:
    """Fraction of pixels that differ between a and b shifted by the best (dy, dx)."""
    h, w = a.shape[:2]
    m = max_shift
    best = 1.0
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            aa = a[m:h - m, m:w - m]
            bb = b[m + dy:h - m + dy, m + dx:w - m + dx]
            best = min(best, float(np.any(aa != bb, axis=-1).mean()))
    return best


def test_best_shift_tells_a_moved_chart_from_different_data():
    """The tolerance of the 8-session comparison must still fail on other data."""
    from PIL import Image, ImageDraw

    def chart(points, y0=0):
        im = Image.new("RGB", (200, 120), "white")
        ImageDraw.Draw(im).line([(x, y + y0) for x, y in points], fill="navy", width=2)
        return np.asarray(im, dtype=np.int16)

    line = [(10, 100), (60, 40), (120, 60), (190, 20)]
    other = [(10, 100), (60, 50), (120, 30), (190, 25)]
    assert _best_shift_changed(chart(line), chart(line, y0=1)) == 0.0
    assert _best_shift_changed(chart(line), chart(other)) > 0.005


def test_eight_concurrent_sessions_compute_once_and_agree(server):
    """8 browser contexts ask the server for the same uncached config at once."""
    from playwright.async_api import async_playwright

    before = _trainings(server["log"])
    url = _url(server["base"], "training_dynamics", seed="4242")

    async def main():
        async with async_playwright() as p:
            b = await p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
            try:
                async def one(i):
                    ctx = await b.new_context(viewport={"width": 1400, "height": 1000})
                    page = await ctx.new_page()
                    await page.goto(url, timeout=TIMEOUT_MS)
                    await page.wait_for_selector(f"{CHART} canvas, {CHART} svg", timeout=TIMEOUT_MS)
                    await page.wait_for_function(
                        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                        timeout=TIMEOUT_MS)
                    await page.wait_for_timeout(500)
                    exc = await page.locator('[data-testid="stException"]').count()
                    best = await page.get_by_text("Lowest validation loss over the whole run").first.inner_text()
                    shot = await page.locator(CHART).first.screenshot()
                    await ctx.close()
                    return exc, best, shot

                return await asyncio.gather(*(one(i) for i in range(8)))
            finally:
                await b.close()

    # The module's sync Playwright owns this thread's event loop: run the async one apart.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        results = pool.submit(lambda: asyncio.run(main())).result()
    assert all(exc == 0 for exc, _, _ in results)
    assert len({best for _, best, _ in results}) == 1, [b for _, b, _ in results]
    # Same data ⇒ same picture, up to anti-aliasing: a browser under load may rasterize a
    # line's edge a few levels differently (seen: 190 pixels off by ≤ 22/255), while a
    # chart of different data moves whole lines (thousands of pixels).
    # The element may also sit a sub-pixel lower in one session (text above it laid out
    # while computing vs. from the cache), which rasterizes the whole chart one pixel
    # off: compare under the best shift of at most one pixel each way.
    ref = _pixels(results[0][2])
    for _, _, shot in results[1:]:
        px = _pixels(shot)
        assert px.shape == ref.shape, "sessions drew charts of different sizes"
        changed = _best_shift_changed(ref, px)
        assert changed < 0.002, f"sessions drew different charts ({changed:.1%} of pixels differ)"
    assert _trainings(server["log"]) - before == 1, "the shared config was trained more than once"
