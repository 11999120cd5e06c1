"""NTK Explorer app benchmark: the Streamlit server as a visitor experiences it.

    python bench/app_bench.py --json                                   # default limits
    python bench/app_bench.py --hosted --json                          # NTK_HOSTED=1 caps
    python bench/app_bench.py --json --markdown /tmp/app_bench.md      # also a Markdown section

ONE JSON object goes to stdout; progress and logs go to stderr. Everything runs against
127.0.0.1 only, on a fresh temporary NTK_CACHE_DIR (so there is no results cache and no
JAX persistent compilation cache either), driving Debian's chromium through Playwright.

The flow. The page list is read from ``ui.nav.PAGES`` at run time (url path = the page
file's stem; the first page is ``/``), so pages added later are measured too.

  1. cold start   launch ``streamlit run app.py`` and open the home page; the clock runs
                  from the launch until the page's formulas (``.katex``) are typeset and
                  the script run is over → ``server_cold_start_to_first_render_s``.
  2. default page ``/training_dynamics`` with no query parameters (= the sidebar
                  defaults), uncached, compile included → ``default_page_uncached_s``.
  3. cached       reload that page N times → ``default_page_cached_rerun_s`` (median), with
                  the server-side script time (``cached_reload_script_ms_median``) and the
                  browser bootstrap (``cached_reload_bootstrap_ms_median``) apart; flip its
                  "Log scale for losses" toggle N times (a script rerun without reload) →
                  ``cached_widget_rerun_s`` (median, end to end).
  4. every page   the other pages with the default sidebar, each uncached on first visit,
                  in menu order, the Findings page last → ``page_render_s`` (per page).
                  On a cold server the Findings page computes the quick protocol (minutes):
                  its time is also ``findings_quick_uncached_s`` and it is left out of the
                  "every page < 10 s" goal.
  5. restart      stop the server, delete the RESULTS cache (everything in NTK_CACHE_DIR
                  but ``jax-compile/``, JAX's persistent compilation cache, which is kept),
                  start it again and visit every page once more, home first →
                  ``page_render_after_restart_s``.
  6. CLI sweep    ``python -m ntk_core sweep --vary l2 --values 0 1e-4 1e-3 1e-2
                  --samples 2000 --epochs 30`` in the same cache → ``cli_sweep_s``,
                  ``cli_sweep_peak_rss_mb``.
  7. profile      the default page's script run through Streamlit's AppTest on that cache
                  (results cached; a new session per run, like a reload), its thread's
                  stack sampled every ~2 ms → ``cached_script_profile`` (ms per run by
                  frame): where the cached script time goes.

The server's RSS (process + children, psutil) is polled every 0.1 s from the launch to
the end of step 4 → ``server_peak_rss_mb_default_flow``; per-step peaks are reported too.

XLA compilations: the server runs with ``NTK_COMPILE_LOG`` (runner.log_compiles: one
line "compile <seconds> <fun_name> pid=…" per JAX backend-compile event); the lines
appended during a visit are that page's ``compiles`` (``compiles_width_page``,
``compiles_training_size_page``, per function in ``…_by_fun``; ``train_compiles_…`` counts
the training program ``jit(_train_grid)`` alone). JAX records that event around
compile-or-load, so a program read back from the persistent compilation cache (after
the runner's ``jax.clear_caches()``, or after a restart) is counted too, with a load time
of milliseconds; the new entries written to ``jax-compile/`` during the visit
(``new_programs``) are the programs actually compiled for the first time.

"Rendered" means, inside the page: Streamlit's script run is over (the app root's
``data-test-script-state`` went through ``running`` and is back to ``notRunning``), the
running-man status widget is gone, and every Vega-Lite chart on the page has its canvas
or svg drawn (or the page shows an error instead). The state must still hold 0.5 s later
(a follow-up rerun restarts the wait); that check is not included in the time.
Timestamps inside the page (``performance.now()`` from navigation start) split each
visit into: browser bootstrap until the script starts, the script run on the server, and
drawing after the run. The progress bars' text is sampled every 50 ms in the page, which
splits the script run into its stages as the runner reports them (queued; starting and
setup — before the runner's first report: validation, store look-ups, data —; training,
compile included; per-epoch kernel spectra; whole spectrum; analytic reference; other)
→ ``stages_ms``; "none" is script time with no running progress bar.

A fresh ``python`` subprocess also runs ``runner.run(defaults)`` split into phases
(imports, data, compile+train, spectra, store) so the page times can be attributed.

Other processes on this 2-core machine inflate wall times: load averages and the busiest
foreign processes are recorded with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
T0 = time.perf_counter()

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage"]
# What "rendered" waits for on the known pages (a page added later waits for "auto": the
# script run is over and every chart it drew, if any, is drawn).
WANT = {"home": "katex", "findings": "chart", "training_dynamics": "chart",
        "spectrum_vs_l2": "chart", "regularization_grid": "chart", "training_size": "chart",
        "width": "chart", "spectrum_explorer": "chart"}
FINDINGS = "findings"


def nav_pages() -> list[dict]:
    """The app's pages from ``ui.nav.PAGES`` (read now: pages may be added at any time), in
    menu order: name (file stem), url path (the first page is served at ``/``), title, want."""
    sys.path.insert(0, str(REPO))
    from ui import nav

    out = []
    for i, (file, title, *_rest) in enumerate(nav.PAGES):
        name = Path(file).stem
        out.append({"name": name, "path": "" if i == 0 else name, "title": title,
                    "want": WANT.get(name, "auto")})
    return out


DEFAULT_PAGE = "training_dynamics"
TOGGLE_LABEL = "Log scale for losses"
CLI_SWEEP = ["sweep", "--vary", "l2", "--values", "0", "1e-4", "1e-3", "1e-2",
             "--samples", "2000", "--epochs", "30"]

# name → (comparison, threshold, description)
TARGETS = {
    "default_page_uncached_s": ("<", 10.0, "default page, uncached, compile included"),
    "default_page_cached_rerun_s": ("<", 0.3, "default page reload with cached results"),
    "server_cold_start_to_first_render_s": ("<", 15.0, "server launch → home page rendered"),
    "server_peak_rss_mb_default_flow": ("<", 700.0, "server peak RSS over the default flow"),
}

# Installed in every document before any page script: logs Streamlit's script-run state
# transitions with performance.now() (ms since navigation start), and every 50 ms the text
# of the page's progress bars (the runner's stage: queued, training, spectra, …).
INIT_JS = r"""
(() => {
  const log = {events: [], sawRunning: false, mark: 0, progress: [], sawQueue: false,
               queueText: null};
  window.__ntk = log;
  let last = null;
  const look = (records) => {
    for (const r of records || []) {
      if (r.type === 'attributes' && r.oldValue === 'running') log.sawRunning = true;
    }
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app) return;
    const s = app.getAttribute('data-test-script-state');
    if (s === 'running') log.sawRunning = true;
    if (s !== last) { log.events.push([performance.now(), s]); last = s; }
  };
  const start = () => {
    new MutationObserver(look).observe(document.documentElement, {
      subtree: true, childList: true, attributes: true, attributeOldValue: true,
      attributeFilter: ['data-test-script-state']});
    look([]);
  };
  if (document.documentElement) start();
  else document.addEventListener('DOMContentLoaded', start);
  const stage = (t) => {
    if (!t) return 'none';
    if (/waiting for the server/.test(t)) return 'queued';
    if (/kernel spectra/.test(t)) return 'spectra';
    if (/training \d+\/\d+ runs/.test(t)) return 'training';
    if (/^(step \d+\/\d+: )?spectrum/.test(t) || /whole spectrum/.test(t)) return 'spectrum';
    if (/reference/.test(t)) return 'reference';
    if (/starting/.test(t)) return 'starting';
    if (/sweep: \d+ points/.test(t) || /^training \S/.test(t)) return 'setup';
    return 'other';
  };
  let lastStage = null;
  setInterval(() => {
    const texts = [...document.querySelectorAll('[data-testid="stProgress"]')]
      .map(b => (b.innerText || '').trim()).filter(t => t && t !== 'done');
    const t = texts.length ? texts[texts.length - 1] : '';
    if (/waiting for the server: place/.test(t)) {
      log.sawQueue = true; if (!log.queueText) log.queueText = t.slice(0, 200);
    }
    const st = stage(t);
    if (st !== lastStage) { log.progress.push([performance.now(), st, t.slice(0, 120)]); lastStage = st; }
  }, 50);
})();
"""

# Returns performance.now() once the page is rendered (see the module docstring), else null.
DONE_JS = r"""
(want) => {
  const log = window.__ntk;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!log || !app || !log.sawRunning) return null;
  if (app.getAttribute('data-test-script-state') !== 'notRunning') return null;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return null;
  const failed = document.querySelector(
      '[data-testid="stException"], [data-testid="stAlertContentError"]');
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  if (want === 'chart') {
    if (!failed && charts.length === 0) return null;
    if (!charts.every(c => c.querySelector('canvas, svg'))) return null;
  } else if (want === 'katex') {
    if (!failed && !document.querySelector('.katex')) return null;
  } else if (want === 'auto') {
    if (!charts.every(c => c.querySelector('canvas, svg'))) return null;
  }
  return performance.now();
}
"""

PROBLEMS_JS = r"""
() => [...document.querySelectorAll(
    '[data-testid="stException"], [data-testid="stAlertContentError"]')]
    .map(e => e.innerText.slice(0, 500))
"""


def log(msg: str) -> None:
    print(f"[app_bench {time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def median(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 4) if xs else None


# --------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------


def machine() -> dict:
    import psutil

    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "streamlit": _version("streamlit"),
        "jax": _version("jax"),
        "chromium": _chromium_version(),
    }


def _version(pkg: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(pkg)
    except Exception:
        return None


def _chromium_version() -> str | None:
    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip() or None
    except Exception:
        return None


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def code_version() -> dict:
    """The commit measured and any uncommitted changes (other people edit the tree)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True,
                                  timeout=30).stdout
        except Exception:
            return ""
    dirty = [line[3:] for line in git("status", "--porcelain").splitlines()
             if line[3:].endswith(".py") or line[3:] in ("requirements.txt",)]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or None,
            "subject": _clip(git("log", "-1", "--format=%s").strip(), 72) or None,
            "uncommitted_py_files": dirty}


def foreign_load(exclude: set[int], seconds: float = 1.0) -> list[dict]:
    """Processes outside this benchmark using ≥ 10 % of a core right now."""
    import psutil

    procs = []
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        if p.pid in exclude:
            continue
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
            procs.append(p)
    time.sleep(seconds)
    out = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            cpu = p.cpu_percent(None)
            if cpu >= 10:
                cmd = " ".join(p.info["cmdline"] or [p.info["name"] or "?"])
                out.append({"pid": p.pid, "cpu_percent": round(cpu, 1), "cmd": cmd[:120]})
    return sorted(out, key=lambda d: -d["cpu_percent"])


def own_pids() -> set[int]:
    import psutil

    me = psutil.Process()
    pids = {me.pid}
    with contextlib.suppress(psutil.Error):
        pids |= {c.pid for c in me.children(recursive=True)}
    with contextlib.suppress(psutil.Error):
        pids |= {p.pid for p in me.parents()}
    return pids


# --------------------------------------------------------------------------
# RSS sampling
# --------------------------------------------------------------------------


class RssSampler(threading.Thread):
    """Polls the RSS of one process and its children every ``interval`` seconds; keeps the
    overall peak and the peak per phase label."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.phase = "start"
        self.peak = 0
        self.last = 0
        self.samples = 0
        self.by_phase: dict[str, int] = {}
        self.cpu_by_phase: dict[str, tuple[float, float]] = {}
        self._cpu_last = 0.0
        self._halt = threading.Event()

    def rss(self) -> int:
        import psutil

        total = 0
        try:
            total += self.proc.memory_info().rss
            kids = self.proc.children(recursive=True)
        except psutil.Error:
            return 0
        for c in kids:
            with contextlib.suppress(psutil.Error):
                total += c.memory_info().rss
        return total

    def sample(self) -> int:
        import psutil

        phase = self.phase
        r = self.rss()
        if r:
            self.last = r
            self.samples += 1
            self.peak = max(self.peak, r)
            self.by_phase[phase] = max(self.by_phase.get(phase, 0), r)
            with contextlib.suppress(psutil.Error):
                ct = self.proc.cpu_times()
                cpu = ct.user + ct.system + ct.children_user + ct.children_system
                first, _ = self.cpu_by_phase.get(phase, (self._cpu_last, 0.0))
                self.cpu_by_phase[phase] = (first, cpu)
                self._cpu_last = cpu
        return r

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds the process used per phase (from the previous phase's last sample)."""
        return {k: round(b - a, 1) for k, (a, b) in self.cpu_by_phase.items()}

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def _steal_s() -> float:
    """Machine-wide CPU time stolen by the hypervisor so far (/proc/stat), seconds."""
    try:
        f = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(f[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class ForeignMonitor(threading.Thread):
    """Every ``interval`` s, the CPU time used by processes outside this benchmark's own
    process tree (other people's jobs on a shared machine), per phase label."""

    def __init__(self, interval: float = 2.0):
        super().__init__(daemon=True)
        self.interval = interval
        self.phase = "start"
        self.by_phase: dict[str, float] = {}
        self.by_cmd: dict[str, float] = {}
        self._prev: dict[int, float] = {}
        self.steal_by_phase: dict[str, float] = {}
        self._steal = _steal_s()
        self._halt = threading.Event()

    def tick(self) -> None:
        import psutil

        steal = _steal_s()
        self.steal_by_phase[self.phase] = self.steal_by_phase.get(self.phase, 0.0) + steal - self._steal
        self._steal = steal

        mine = own_pids()
        now: dict[int, float] = {}
        for p in psutil.process_iter(["pid", "cmdline", "name", "cpu_times"]):
            if p.pid in mine or p.info["cpu_times"] is None:
                continue
            ct = p.info["cpu_times"]
            now[p.pid] = ct.user + ct.system
            if self._prev and p.pid in self._prev:
                d = now[p.pid] - self._prev[p.pid]
            elif self._prev:  # started since the last tick
                d = now[p.pid]
            else:
                continue
            if d > 0:
                self.by_phase[self.phase] = self.by_phase.get(self.phase, 0.0) + d
                cmd = " ".join(p.info["cmdline"] or [p.info["name"] or "?"])[:100]
                self.by_cmd[cmd] = self.by_cmd.get(cmd, 0.0) + d
        self._prev = now

    def run(self) -> None:
        while not self._halt.is_set():
            with contextlib.suppress(Exception):
                self.tick()
            self._halt.wait(self.interval)

    def stop(self) -> dict:
        self._halt.set()
        self.join(timeout=10)
        top = sorted(self.by_cmd.items(), key=lambda kv: -kv[1])
        return {"foreign_cpu_s_by_step": {k: round(v, 1) for k, v in self.by_phase.items()},
                "foreign_cpu_s_total": round(sum(self.by_phase.values()), 1),
                "cpu_steal_s_by_step": {k: round(v, 1) for k, v in self.steal_by_phase.items()},
                "foreign_top_processes": [{"cmd": c, "cpu_s": round(v, 1)} for c, v in top[:5]
                                          if v >= 1.0]}


def mb(x: int | float) -> float:
    return round(x / 2**20, 1)


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


EXTRA_ENV: dict[str, str] = {}


def server_env(tmp: Path, hosted: bool) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("NTK_MAX_") or k == "NTK_HOSTED")}
    env.update(EXTRA_ENV)
    env.update(NTK_CACHE_DIR=str(tmp / "cache"), NTK_COMPUTE_LOG=str(tmp / "compute.log"),
               NTK_COMPILE_LOG=str(tmp / "compile.log"), JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    if hosted:
        env["NTK_HOSTED"] = "1"
    return env


def wait_health(base: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def compute_counts(path: Path) -> dict[str, int]:
    counts = {"trainings": 0, "spectra": 0}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in counts:
                counts[parts[0]] += int(parts[1])
    return counts


# --------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------


def wait_rendered(page, want: str, timeout_s: float) -> tuple[float, float]:
    """Blocks until the page is rendered and still is 0.5 s later.

    Returns (perf_counter when first seen rendered in the final state, in-page ms).
    """
    deadline = time.perf_counter() + timeout_s
    while True:
        left_ms = max(1000.0, (deadline - time.perf_counter()) * 1000)
        handle = page.wait_for_function(DONE_JS, arg=want, timeout=left_ms, polling="raf")
        t_done = time.perf_counter()
        in_page = handle.json_value()
        page.wait_for_timeout(500)
        if page.evaluate(DONE_JS, want) is not None:
            return t_done, in_page
        if time.perf_counter() > deadline:
            raise TimeoutError("page did not settle")


def stage_split(progress: list, t0_ms: float, t1_ms: float) -> dict[str, float]:
    """ms spent in each progress stage between t0_ms and t1_ms (in-page clock); "none" is
    script time with no active progress bar (the page's own work, store reads, charts)."""
    out: dict[str, float] = {}
    cur = "none"
    t = t0_ms
    for ts, st, _text in progress:
        if ts <= t0_ms:
            cur = st
            continue
        if ts >= t1_ms:
            break
        out[cur] = out.get(cur, 0.0) + ts - t
        cur, t = st, ts
    out[cur] = out.get(cur, 0.0) + max(t1_ms - t, 0.0)
    return {k: round(v, 1) for k, v in out.items() if v > 0}


def breakdown(page, done_ms: float, since_ms: float = 0.0) -> dict:
    """Splits a visit using the in-page script-state log (ms since navigation start)."""
    events = page.evaluate("() => window.__ntk ? window.__ntk.events : []")
    progress = page.evaluate("() => window.__ntk ? window.__ntk.progress : []")
    events = [(t, s) for t, s in events if t >= since_ms - 1]
    running = [t for t, s in events if s == "running"]
    idle = [t for t, s in events if s == "notRunning" and t <= done_ms + 1]
    out = {"done_ms": round(done_ms - since_ms, 1)}
    if running:
        out["bootstrap_ms"] = round(running[0] - since_ms, 1)  # until the script starts
        if idle and idle[-1] >= running[0]:
            out["script_ms"] = round(idle[-1] - running[0], 1)  # first start → last end
            out["draw_after_run_ms"] = round(done_ms - idle[-1], 1)
            out["stages_ms"] = stage_split(progress, running[0], idle[-1])
        out["runs"] = len(running)
    # The progress bar's stage transitions (ms from the start of this visit, stage, text).
    out["progress_log"] = [[round(t - since_ms), st, text[:80]] for t, st, text in progress
                           if t >= since_ms - 1][:60]
    return out


class CompileWatch:
    """XLA compile events of the server (its NTK_COMPILE_LOG) and the programs JAX wrote to
    its persistent compilation cache (``jax-compile/*-cache``), counted between two marks."""

    def __init__(self, log_path: Path, jax_dir: Path):
        self.log_path, self.jax_dir = log_path, jax_dir

    def _lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def _programs(self) -> set[str]:
        try:
            return {f.name for f in self.jax_dir.glob("*-cache")}
        except OSError:
            return set()

    def mark(self) -> tuple[int, set[str]]:
        return len(self._lines()), self._programs()

    def since(self, mark: tuple[int, set[str]]) -> dict:
        n0, progs0 = mark
        by_fun: dict[str, int] = {}
        s_by_fun: dict[str, float] = {}
        for line in self._lines()[n0:]:
            parts = line.split()
            if len(parts) < 3 or parts[0] != "compile":
                continue
            fun = parts[2] if not parts[2].startswith("pid=") else "?"
            by_fun[fun] = by_fun.get(fun, 0) + 1
            with contextlib.suppress(ValueError):
                s_by_fun[fun] = s_by_fun.get(fun, 0.0) + float(parts[1])
        new: dict[str, int] = {}
        for name in self._programs() - progs0:
            fun = name.rsplit("-", 2)[0]  # jit__train_grid-<hash>-cache
            new[fun] = new.get(fun, 0) + 1
        train = sum(v for k, v in by_fun.items() if "_train_grid" in k)
        return {"compiles": sum(by_fun.values()), "train_compiles": train,
                "compile_s": round(sum(s_by_fun.values()), 2),
                "train_compile_s": round(sum(v for k, v in s_by_fun.items() if "_train_grid" in k), 2),
                "compiles_by_fun": dict(sorted(by_fun.items(), key=lambda kv: -kv[1])),
                "compile_s_by_fun": {k: round(v, 3) for k, v in
                                     sorted(s_by_fun.items(), key=lambda kv: -kv[1])},
                "new_programs": sum(new.values()),
                "new_programs_by_fun": dict(sorted(new.items(), key=lambda kv: -kv[1]))}


def visit(page, url: str, want: str, timeout_s: float, counts_path: Path,
          watch: CompileWatch | None = None) -> dict:
    before = compute_counts(counts_path)
    mark = watch.mark() if watch else None
    la = loadavg()
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
    t_done, done_ms = wait_rendered(page, want, timeout_s)
    after = compute_counts(counts_path)
    rec = {"wall_s": round(t_done - t0, 3), **breakdown(page, done_ms),
           "trainings": after["trainings"] - before["trainings"],
           "spectra": after["spectra"] - before["spectra"], "load_before": la}
    if watch:
        rec.update(watch.since(mark))
    problems = page.evaluate(PROBLEMS_JS)
    if problems:
        rec["errors"] = problems
    return rec


def reload(page, want: str, timeout_s: float) -> dict:
    t0 = time.perf_counter()
    page.reload(wait_until="commit", timeout=timeout_s * 1000)
    t_done, done_ms = wait_rendered(page, want, timeout_s)
    return {"wall_s": round(t_done - t0, 3), **breakdown(page, done_ms)}


def toggle_rerun(page, label: str, timeout_s: float) -> dict:
    """Flips a toggle (a rerun without reload) and waits for the run to finish."""
    box = page.get_by_role("checkbox", name=label)
    if box.count() == 0:
        box = page.get_by_text(label, exact=True)
    mark = page.evaluate("() => { window.__ntk.sawRunning = false; "
                         "return window.__ntk.mark = performance.now(); }")
    t0 = time.perf_counter()
    box.first.click()
    t_done, done_ms = wait_rendered(page, "chart", timeout_s)
    return {"wall_s": round(t_done - t0, 3), **breakdown(page, done_ms, since_ms=mark)}


# --------------------------------------------------------------------------
# CLI sweep and phase split (subprocesses)
# --------------------------------------------------------------------------


def cli_sweep(env: dict, timeout_s: float) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ntk_core", *CLI_SWEEP], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = RssSampler(proc.pid)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.stop()
    rec = {"cli_sweep_s": round(wall, 2), "cli_sweep_peak_rss_mb": mb(sampler.peak),
           "cli_sweep_returncode": proc.returncode,
           "cli_sweep_command": "python -m ntk_core " + " ".join(CLI_SWEEP)}
    if proc.returncode != 0:
        rec["cli_sweep_stderr_tail"] = err[-1500:]
    return rec


def phase_probe() -> dict:
    """Runs in a fresh process: runner.run(default sidebar config) split into phases."""
    import resource

    import psutil

    ph: dict[str, float] = {}
    me = psutil.Process()

    def rss(name: str) -> None:
        ph[f"rss_after_{name}_mb"] = round(me.memory_info().rss / 2**20, 1)

    rss("start")
    t = time.perf_counter()
    import jax  # noqa: F401
    import jax.numpy as jnp  # noqa: F401
    ph["import_jax_s"] = time.perf_counter() - t
    t = time.perf_counter()
    import numpy as np

    import ntk_core as nc
    import runner
    from ui import params as P
    ph["import_ntk_core_runner_s"] = time.perf_counter() - t
    rss("imports")

    limits = runner.Limits.from_env()
    cfg = P.default_config(limits)
    t = time.perf_counter()
    split = nc.load_split(cfg.n_train, cfg.n_val, cfg.seed, cfg.dataset)
    ph["load_split_s"] = time.perf_counter() - t
    rss("load_split")

    def train():
        return nc.train_grid(split.x_train, split.y_train, split.x_val, split.y_val,
                             width=cfg.width, reg_strengths=[cfg.reg_strength], lrs=[cfg.lr],
                             seeds=[cfg.seed], parameterization=cfg.parameterization, reg=cfg.reg,
                             optimizer=cfg.optimizer, epochs=cfg.epochs, batch_size=cfg.batch_size)

    t = time.perf_counter()
    tr = train()
    ph["train_first_call_s"] = time.perf_counter() - t  # compile + train
    rss("train_first_call")
    t = time.perf_counter()
    tr = train()
    ph["train_warm_s"] = time.perf_counter() - t
    ph["train_compile_est_s"] = ph["train_first_call_s"] - ph["train_warm_s"]
    params = {k: v[0] for k, v in tr.params.items()}

    def spectra():
        return nc.checkpoint_spectra(split.x_train, params, parameterization=cfg.parameterization,
                                     top_k=cfg.top_k, dense_max=limits.max_dense_n)

    t = time.perf_counter()
    cs = spectra()
    ph["spectra_first_call_s"] = time.perf_counter() - t
    rss("spectra_first_call")
    t = time.perf_counter()
    cs = spectra()
    ph["spectra_warm_s"] = time.perf_counter() - t
    ph["spectra_compile_est_s"] = ph["spectra_first_call_s"] - ph["spectra_warm_s"]
    ph["spectra_checkpoints"] = int(cs.topk.shape[0])
    ph["spectra_method"] = cs.method

    # One checkpoint's spectrum, split: kernel formation vs the top-k eigensolver.
    from ntk_core._src import ntk as _ntk
    from ntk_core._src import spectra as _sp
    p = {k: jnp.asarray(v[-1]) for k, v in params.items()}
    x = jnp.asarray(split.x_train)
    g = _ntk.gram(x, parameterization=cfg.parameterization)
    g.block_until_ready()
    t = time.perf_counter()
    for _ in range(3):
        op = np.asarray(_ntk.traced_ntk_from_gram(p, x, g, parameterization=cfg.parameterization))
    ph["kernel_per_checkpoint_warm_s"] = (time.perf_counter() - t) / 3
    t = time.perf_counter()
    for _ in range(3):
        _sp.top_k_eigs(op, min(cfg.top_k, cfg.n_train), dtype=np.float32)
    ph["topk_per_checkpoint_cold_start_vector_s"] = (time.perf_counter() - t) / 3

    store = runner.open_store(os.environ.get("NTK_CACHE_DIR"))
    t = time.perf_counter()
    r = runner.run(cfg, limits, store=store)
    ph["runner_run_warm_computed_s"] = time.perf_counter() - t  # train + spectra + store put
    ph["runner_run_warm_status"] = r.status
    t = time.perf_counter()
    r = runner.run(cfg, limits, store=store)
    ph["runner_run_cache_hit_s"] = time.perf_counter() - t
    ph["runner_run_hit_status"] = r.status
    rss("runner_runs")
    from runner import _run as _r
    value = _r._to_value(r)
    ph["stored_value_mb"] = round(sum(getattr(v, "nbytes", 0) for v in value.values()) / 2**20, 2)
    key = {**_r._key_config(cfg), "bench": "put-timing"}
    t = time.perf_counter()
    store.put("run", key, value)
    ph["store_put_s"] = time.perf_counter() - t
    t = time.perf_counter()
    store.get("run", key)
    ph["store_get_s"] = time.perf_counter() - t
    t = time.perf_counter()
    split2 = nc.load_split(cfg.n_train, cfg.n_val, cfg.seed, cfg.dataset)  # noqa: F841
    ph["load_split_warm_s"] = time.perf_counter() - t
    ph["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    ph["config"] = cfg.to_dict()
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in ph.items()}


def run_phase_probe(env: dict, timeout_s: float) -> dict:
    t0 = time.perf_counter()
    try:
        cp = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_phase-probe"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    if cp.returncode != 0:
        return {"error": cp.stderr[-1500:]}
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = round(time.perf_counter() - t0, 2)
    return out


def profile_probe(reps: int = 5) -> dict:
    """Runs in a fresh process on a cache that holds the default page's results: the
    default page's script through Streamlit's AppTest (a new session each run, like a
    browser reload), with a thread sampling the script thread's stack every ~2 ms. Returns
    the run times and where the script time goes (ms per run: by the innermost frame in
    this repository, and by the innermost frame overall)."""
    import collections
    import threading

    from streamlit.testing.v1 import AppTest

    repo = str(REPO) + "/"
    page = f"pages/{DEFAULT_PAGE}.py"

    def new():
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
        at.switch_page(page)
        return at

    t = time.perf_counter()
    first = new()
    first.run()
    first_s = time.perf_counter() - t
    exceptions = len(first.exception)
    # Each sample is weighted by the wall time since the previous one: the sampler gets the
    # GIL sooner while the script thread sleeps or waits (time.sleep, I/O) than while it
    # runs Python, so counting samples would over-weight waits.
    by_repo: collections.Counter = collections.Counter()
    by_leaf: collections.Counter = collections.Counter()
    samples = [0]
    weight = [0.0]
    halt = threading.Event()
    me = threading.get_ident()

    def sample() -> None:
        mine = threading.get_ident()
        last = time.perf_counter()
        while not halt.is_set():
            now = time.perf_counter()
            dt, last = now - last, now
            for tid, frame in sys._current_frames().items():
                if tid in (me, mine):
                    continue
                frames = []
                f = frame
                while f is not None:
                    frames.append((f.f_code.co_filename, f.f_code.co_name))
                    f = f.f_back
                if not any("script_runner" in fn for fn, _ in frames):
                    continue  # not the script thread
                samples[0] += 1
                weight[0] += dt
                own = next((f"{fn[len(repo):]}:{co}" for fn, co in frames
                            if fn.startswith(repo) and "/.venv/" not in fn), "(streamlit runner)")
                lib = frames[0][0].split("site-packages/")[-1]
                by_repo[own] += dt
                by_leaf[f"{lib}:{frames[0][1]}"] += dt
            time.sleep(0.002)

    runs = []
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    for _ in range(reps):
        at = new()
        t = time.perf_counter()
        at.run()
        runs.append(time.perf_counter() - t)
    halt.set()
    th.join(timeout=5)
    def top(c: collections.Counter, k: int) -> list:  # sampled seconds → ms per run
        return [[name, round(1000 * v / len(runs), 1)] for name, v in c.most_common(k)]

    return {"page": page, "first_run_s": round(first_s, 3), "first_run_exceptions": exceptions,
            "rerun_s": [round(r, 3) for r in runs], "rerun_s_median": round(statistics.median(runs), 3),
            "samples": samples[0], "sampled_s_per_run": round(weight[0] / len(runs), 3),
            "ms_per_run_by_repo_frame": top(by_repo, 15),
            "ms_per_run_by_innermost_frame": top(by_leaf, 15)}


def run_profile_probe(env: dict, timeout_s: float) -> dict:
    try:
        cp = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_profile-probe"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    if cp.returncode != 0:
        return {"error": cp.stderr[-1500:]}
    return json.loads(cp.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# The flow
# --------------------------------------------------------------------------


def start_server(env: dict, port: int, out) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_server(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def clear_results(cache_dir: Path) -> dict:
    """Deletes the results store (everything in NTK_CACHE_DIR but ``jax-compile/``)."""
    deleted = 0
    for child in cache_dir.iterdir() if cache_dir.exists() else []:
        if child.name == "jax-compile":
            continue
        deleted += 1
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()
    kept = len(list((cache_dir / "jax-compile").glob("*-cache")))
    return {"deleted_entries": deleted, "kept_jax_compile_programs": kept}


def visit_order(pages: list[dict]) -> list[dict]:
    """Home first, then the default page, the others in menu order, the Findings page last
    (its protocol must not pre-compute other pages' runs, and it takes minutes)."""
    first = pages[:1]
    rest = pages[1:]
    default = [p for p in rest if p["name"] == DEFAULT_PAGE]
    findings = [p for p in rest if p["name"] == FINDINGS]
    others = [p for p in rest if p["name"] not in (DEFAULT_PAGE, FINDINGS)]
    return first + default + others + findings


def bench(args) -> dict:
    import psutil
    from playwright.sync_api import sync_playwright

    res: dict = {"hosted": bool(args.hosted), "reps": args.reps, "server_env_overrides": dict(EXTRA_ENV),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
                 "code": code_version(),
                 "load_before": loadavg()}
    pages = nav_pages()
    res["nav_pages"] = [{k: p[k] for k in ("name", "path", "title")} for p in pages]
    if args.pages:
        wanted = {w.strip() for w in args.pages.split(",") if w.strip()}
        unknown = wanted - {p["name"] for p in pages}
        if unknown:
            raise SystemExit(f"--pages: unknown page(s) {sorted(unknown)}; pages: "
                             + ", ".join(p["name"] for p in pages))
        pages = [p for i, p in enumerate(pages) if i == 0 or p["name"] in wanted]
    if args.skip_findings:
        pages = [p for p in pages if p["name"] != FINDINGS]
    order = visit_order(pages)
    res["visit_order"] = [p["name"] for p in order]
    res["foreign_processes_before"] = foreign_load(own_pids())
    monitor = ForeignMonitor()
    monitor.start()
    if res["foreign_processes_before"]:
        log(f"other busy processes: {res['foreign_processes_before']}")
    tmp = Path(tempfile.mkdtemp(prefix="ntk_app_bench_"))
    env = server_env(tmp, args.hosted)
    counts_path = tmp / "compute.log"
    watch = CompileWatch(tmp / "compile.log", tmp / "cache" / "jax-compile")
    server_log = open(tmp / "server.log", "w")
    proc = None
    sampler = None

    def page_timeout(p: dict) -> float:
        return args.findings_timeout if p["name"] == FINDINGS else args.page_timeout

    def one(ctx, base: str, p: dict, label: str) -> dict:
        sampler.phase = monitor.phase = label
        page = ctx.new_page()
        log(f"/{p['path']} ({label}) …")
        try:
            rec = visit(page, f"{base}/{p['path']}", p["want"], page_timeout(p), counts_path, watch)
        except Exception as exc:  # a timeout must not lose the other figures
            rec = {"wall_s": None, "error": f"{type(exc).__name__}: {exc}"[:500]}
            with contextlib.suppress(Exception):
                rec["stages_ms_so_far"] = page.evaluate(
                    "() => window.__ntk ? window.__ntk.progress.slice(-5) : []")
        page.close()
        rec["rss_peak_mb"] = mb(sampler.by_phase.get(label, 0))
        log(f"/{p['path']}: " + json.dumps({k: rec.get(k) for k in (
            "wall_s", "bootstrap_ms", "script_ms", "stages_ms", "trainings", "compiles",
            "train_compiles", "new_programs", "compile_s", "rss_peak_mb", "error", "errors")
            if rec.get(k) is not None}, default=str))
        return rec

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            ctx.add_init_script(INIT_JS)
            warm = ctx.new_page()  # chromium's own start-up is not part of the server's time
            warm.goto("about:blank")
            warm.close()

            # 1. Cold start → home page rendered.
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            log(f"launching streamlit on {base} (hosted={args.hosted}, cache {tmp / 'cache'})")
            t_launch = time.perf_counter()
            proc = start_server(env, port, server_log)
            sampler = RssSampler(proc.pid)
            sampler.phase = monitor.phase = "cold_start"
            sampler.start()
            if not wait_health(base, proc, 120):
                raise RuntimeError("streamlit did not start:\n" + (tmp / "server.log").read_text()[-3000:])
            res["server_health_ok_s"] = round(time.perf_counter() - t_launch, 3)
            res["server_rss_after_start_mb"] = mb(sampler.sample())
            log(f"health ok after {res['server_health_ok_s']} s, RSS {res['server_rss_after_start_mb']} MB")

            home = one(ctx, base, order[0], "cold_start")
            # launch → health ok → (navigation starts at once) → rendered
            res["server_cold_start_to_first_render_s"] = (
                None if home["wall_s"] is None else round(res["server_health_ok_s"] + home["wall_s"], 3))
            res["server_rss_after_home_mb"] = mb(sampler.sample())
            page_render = {order[0]["path"]: home["wall_s"]}
            detail = {order[0]["path"]: home}

            # 2. Default page, uncached; 3. cached reloads, then toggle reruns.
            dflt = [p for p in order if p["name"] == DEFAULT_PAGE]
            if dflt:
                p = dflt[0]
                sampler.phase = monitor.phase = p["path"]
                page = ctx.new_page()
                log(f"/{p['path']} (uncached, defaults) …")
                rec = visit(page, f"{base}/{p['path']}", p["want"], args.page_timeout, counts_path, watch)
                rec["rss_peak_mb"] = mb(sampler.by_phase.get(p["path"], 0))
                res["default_page_uncached_s"] = rec["wall_s"]
                page_render[p["path"]] = rec["wall_s"]
                detail[p["path"]] = rec
                log(f"/{p['path']}: {rec}")

                sampler.phase = monitor.phase = "cached_reruns"
                reloads = []
                for i in range(args.reps):
                    reloads.append(reload(page, "chart", args.page_timeout))
                    log(f"reload {i + 1}: {reloads[-1]}")
                toggles = []
                for i in range(args.reps):
                    toggles.append(toggle_rerun(page, TOGGLE_LABEL, args.page_timeout))
                    log(f"toggle {i + 1}: {toggles[-1]}")
                res["default_page_cached_rerun_s"] = median([r["wall_s"] for r in reloads])
                res["cached_widget_rerun_s"] = median([r["wall_s"] for r in toggles])
                res["cached_reload_runs"] = reloads
                res["cached_widget_runs"] = toggles
                for what, runs in (("reload", reloads), ("widget", toggles)):
                    for part in ("script_ms", "bootstrap_ms", "draw_after_run_ms"):
                        res[f"cached_{what}_{part}_median"] = median([r.get(part) for r in runs])
                problems = page.evaluate(PROBLEMS_JS)
                if problems:
                    res["cached_errors"] = problems
                page.close()

            # 4. Every other page, uncached, default sidebar (Findings last).
            for p in order[1:]:
                if p["path"] in page_render:
                    continue
                rec = one(ctx, base, p, p["path"])
                page_render[p["path"]] = rec["wall_s"]
                detail[p["path"]] = rec
            sampler.phase = monitor.phase = "idle"
            res["server_rss_end_of_flow_mb"] = mb(sampler.sample())
            sampler.stop()
            res["server_peak_rss_mb_default_flow"] = mb(sampler.peak)
            res["server_rss_peak_by_step_mb"] = {k: mb(v) for k, v in sampler.by_phase.items()}
            res["server_peak_rss_mb_excluding_findings"] = mb(max(
                [v for k, v in sampler.by_phase.items() if k != FINDINGS] or [0]))
            res["server_cpu_s_by_step"] = sampler.cpu_seconds()
            res["rss_samples"] = sampler.samples
            for path in detail:
                step = path or "cold_start"
                detail[path].setdefault("rss_peak_mb", mb(sampler.by_phase.get(step, 0)))
                detail[path]["foreign_cpu_s"] = round(monitor.by_phase.get(step, 0.0), 1)
                detail[path]["server_cpu_s"] = res["server_cpu_s_by_step"].get(step)
            res["page_render_s"] = page_render
            res["page_detail"] = detail
            res["page_titles"] = {p["path"]: p["title"] for p in order}
            res["page_bootstrap_ms"] = {k: d.get("bootstrap_ms") for k, d in detail.items()}
            res["page_script_ms"] = {k: d.get("script_ms") for k, d in detail.items()}
            res["page_stages_ms"] = {k: d.get("stages_ms") for k, d in detail.items()}
            res["compiles_by_page"] = {k: d.get("compiles") for k, d in detail.items()}
            res["train_compiles_by_page"] = {k: d.get("train_compiles") for k, d in detail.items()}
            res["new_programs_by_page"] = {k: d.get("new_programs") for k, d in detail.items()}
            res["compile_s_by_page"] = {k: d.get("compile_s") for k, d in detail.items()}
            for name in ("width", "training_size"):
                d = detail.get(name)
                if d is None:
                    continue
                res[f"compiles_{name}_page"] = d.get("compiles")
                res[f"compiles_{name}_page_by_fun"] = d.get("compiles_by_fun")
                res[f"train_compiles_{name}_page"] = d.get("train_compiles")
                res[f"compile_s_{name}_page"] = d.get("compile_s")
                res[f"compile_s_{name}_page_by_fun"] = d.get("compile_s_by_fun")
                res[f"new_programs_{name}_page"] = d.get("new_programs")
                res[f"new_programs_{name}_page_by_fun"] = d.get("new_programs_by_fun")
            if FINDINGS in page_render:
                res["findings_quick_uncached_s"] = page_render[FINDINGS]
            res["default_flow_total_s"] = round(time.perf_counter() - t_launch, 1)
            res["compute_counts_default_flow"] = compute_counts(counts_path)
            try:
                res["server_cpu_s"] = round(sum(psutil.Process(proc.pid).cpu_times()[:2]), 1)
            except psutil.Error:
                pass
            res["load_after_flow"] = loadavg()
            stop_server(proc)
            proc = None

            # 5. Restart: results cache cleared, JAX's compilation cache kept.
            if not args.skip_restart:
                res["restart_cleared"] = clear_results(tmp / "cache")
                log(f"restart with the results cache cleared: {res['restart_cleared']}")
                res["load_before_restart"] = loadavg()
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                t_launch = time.perf_counter()
                proc = start_server(env, port, server_log)
                sampler = RssSampler(proc.pid)
                sampler.phase = monitor.phase = "restart:cold_start"
                sampler.start()
                if not wait_health(base, proc, 120):
                    raise RuntimeError("streamlit did not restart:\n"
                                       + (tmp / "server.log").read_text()[-3000:])
                health = time.perf_counter() - t_launch
                after: dict = {}
                after_detail: dict = {}
                for i, p in enumerate(order):
                    label = "restart:cold_start" if i == 0 else f"restart:{p['name']}"
                    rec = one(ctx, base, p, label)
                    after[p["path"]] = rec["wall_s"]
                    after_detail[p["path"]] = rec
                    if i == 0 and rec["wall_s"] is not None:
                        res["server_cold_start_after_restart_s"] = round(health + rec["wall_s"], 3)
                sampler.stop()
                res["page_render_after_restart_s"] = after
                res["page_detail_after_restart"] = after_detail
                res["compiles_after_restart_by_page"] = {k: d.get("compiles") for k, d in after_detail.items()}
                res["new_programs_after_restart_by_page"] = {k: d.get("new_programs")
                                                             for k, d in after_detail.items()}
                res["server_peak_rss_mb_after_restart_flow"] = mb(sampler.peak)
                if FINDINGS in after:
                    res["findings_quick_after_restart_s"] = after[FINDINGS]
                res["load_after_restart_flow"] = loadavg()
                stop_server(proc)
                proc = None
            ctx.close()
            browser.close()
    finally:
        stop_server(proc)  # first: never leave a server behind
        if sampler is not None:
            with contextlib.suppress(Exception):
                sampler.stop()
        server_log.close()

    slog = (tmp / "server.log").read_text(errors="replace")
    res["server_log_tail"] = slog[-2000:]

    # 6. CLI sweep in the same cache, with the server stopped (so it competes with nothing).
    if not args.skip_cli:
        monitor.phase = "cli_sweep"
        log("CLI sweep …")
        res.update(cli_sweep(env, args.page_timeout * 2))
        log(f"CLI sweep: {res['cli_sweep_s']} s, peak RSS {res['cli_sweep_peak_rss_mb']} MB")
    # 7. Where a cached script run's time goes (sampled), on the cache the flow filled.
    if not args.skip_profile and (REPO / "pages" / f"{DEFAULT_PAGE}.py").exists():
        monitor.phase = "cached_script_profile"
        log("sampling a cached run of the default page's script (AppTest) …")
        res["cached_script_profile"] = run_profile_probe(env, args.page_timeout)
        log(f"cached script profile: {res['cached_script_profile']}")
    # 8. Phase split of one default run, fresh process, fresh cache.
    if not args.skip_phases:
        monitor.phase = "runner_phases"
        log("phase split of runner.run(defaults) …")
        penv = server_env(tmp / "phases", args.hosted)
        (tmp / "phases").mkdir(exist_ok=True)
        res["runner_phases"] = run_phase_probe(penv, args.page_timeout)
        log(f"phases: {res['runner_phases']}")
    res.update(monitor.stop())
    if res["foreign_cpu_s_total"] > 5:
        log(f"other processes used {res['foreign_cpu_s_total']} CPU-s during the run: "
            f"{res['foreign_cpu_s_by_step']}")
    res["load_after"] = loadavg()
    res["foreign_processes_after"] = foreign_load(own_pids())
    res["tmp_dir"] = str(tmp)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)

    res["targets"] = {}
    for name, (op, thr, desc) in TARGETS.items():
        v = res.get(name)
        ok = None if v is None else (v < thr if op == "<" else v >= thr)
        res["targets"][name] = {"value": v, "target": f"{op} {thr:g}", "pass": ok, "what": desc}
    res["goals"] = goals(res)
    return res


def _goal(measured, op: str, thr: float, what: str, note: str | None = None) -> dict:
    met = None
    if isinstance(measured, (int, float)):
        met = {"<": measured < thr, "<=": measured <= thr}[op]
    g = {"target": f"{op} {thr:g}", "measured": measured, "met": met, "what": what}
    if note:
        g["note"] = note
    return g


def goals(res: dict) -> dict:
    """The issue's goals ("Instant in class"): target, measured, met (None = not measured)."""
    pr = res.get("page_render_s") or {}
    out = {
        "train_compiles_width_page": _goal(
            res.get("train_compiles_width_page"), "<=", 2,
            "training programs jit(_train_grid) compiled (or loaded) for the Width page's first visit"),
        "train_compiles_training_size_page": _goal(
            res.get("train_compiles_training_size_page"), "<=", 2,
            "training programs jit(_train_grid) compiled (or loaded) for the Training-set size page"),
        "width_page_render_s": _goal(pr.get("width"), "<", 8.0, "Width page, first visit, uncached"),
        "spectrum_vs_l2_page_render_s": _goal(pr.get("spectrum_vs_l2"), "<", 5.0,
                                              "Spectrum vs L2 page, first visit, uncached"),
        "training_size_page_render_s": _goal(pr.get("training_size"), "<", 5.0,
                                             "Training-set size page, first visit, uncached"),
    }
    checked = {k: v for k, v in pr.items() if k != FINDINGS}
    worst = max(checked.items(), key=lambda kv: float("inf") if kv[1] is None else kv[1]) if checked else None
    g = _goal(None if worst is None or any(v is None for v in checked.values()) else worst[1], "<", 10.0,
              "every page, first visit, uncached: the slowest one",
              "the Findings page is left out: on a cold server it computes the quick protocol "
              "(minutes), measured apart as findings_quick_uncached_s")
    if worst is not None:
        g["slowest_page"] = worst[0] or "home"
        g["pages_over"] = [k or "home" for k, v in checked.items() if v is None or v >= 10.0]
    out["every_page_render_s"] = g
    out["cached_reload_script_ms_median"] = _goal(
        res.get("cached_reload_script_ms_median"), "<=", 150.0,
        "server-side script run of a cached reload of the default page (median)")
    out["cached_widget_rerun_s"] = _goal(res.get("cached_widget_rerun_s"), "<=", 0.3,
                                         "widget rerun with cached results, end to end (median)")
    out["server_peak_rss_mb_default_flow"] = _goal(
        res.get("server_peak_rss_mb_default_flow"), "<", 700.0,
        "server peak RSS (process tree) over every page" + (" incl. Findings" if FINDINGS in pr else ""))
    return out


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def verdict(ok) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        v = f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return f"{v}{unit}"


def _stages(d: dict | None) -> str:
    if not d:
        return "—"
    order = ["queued", "starting", "setup", "training", "spectra", "spectrum", "reference", "other", "none"]
    keys = [k for k in order if k in d] + [k for k in d if k not in order]
    return ", ".join(f"{k} {d[k] / 1000:.2f}" for k in keys if d[k] >= 10)


def markdown(res: dict) -> str:
    m = res["machine"]
    t = res["targets"]
    mode = "hosted (`NTK_HOSTED=1`)" if res["hosted"] else "default limits"
    lines = [
        "## App (Streamlit server)" + (" — hosted mode" if res["hosted"] else ""),
        "",
        f"`python bench/app_bench.py{' --hosted' if res['hosted'] else ''} --json` "
        f"({res['started']}), {mode}: a real `streamlit run app.py` on 127.0.0.1 driven by "
        f"headless chromium, fresh cache directory (no results cache, no JAX compilation "
        f"cache). Pages from `ui.nav.PAGES`, visited in the order "
        f"{', '.join('`' + n + '`' for n in res.get('visit_order', []))}. Medians of "
        f"{res['reps']} repetitions for the cached figures.",
        "",
        f"Machine: {m['cpu_model']}, {m['logical_cores']} logical cores "
        f"({m['physical_cores']} physical), {m['ram_gb']} GB RAM; Python {m['python']}, "
        f"Streamlit {m['streamlit']}, JAX {m['jax']}, {m['chromium']}. "
        f"Load average (1/5/15 min) before / after the first flow / after the restart flow / "
        f"at the end: {res['load_before']} / {res.get('load_after_flow')} / "
        f"{res.get('load_after_restart_flow')} / {res.get('load_after')}.",
    ]
    code = res.get("code") or {}
    if code.get("commit"):
        lines.append(f"Code: commit `{code['commit']}` ({code.get('subject')})"
                     + (", with uncommitted changes to " + ", ".join(
                         f"`{f}`" for f in code["uncommitted_py_files"])
                        if code.get("uncommitted_py_files") else "") + ".")
    if res.get("server_env_overrides"):
        lines.append("Extra server environment (what-if run): " + ", ".join(
            f"`{k}={v}`" for k, v in res["server_env_overrides"].items()) + ".")
    busy = res.get("foreign_processes_before") or []
    if busy:
        lines.append("Other busy processes at the start: " + "; ".join(
            f"`{b['cmd'][:60]}` {b['cpu_percent']} %" for b in busy[:3]) +
            " — wall times are inflated accordingly.")
    if res.get("foreign_cpu_s_total") is not None:
        top = res.get("foreign_top_processes") or []
        lines.append(f"CPU time used by other processes during the run (sampled every 2 s): "
                     f"{res['foreign_cpu_s_total']} CPU-s"
                     + (" — mostly " + "; ".join(f"`{t['cmd'][:70]}` {t['cpu_s']} s" for t in top[:3])
                        if top else "") + "."
                     + (f" CPU time stolen by the hypervisor: "
                        f"{round(sum(res.get('cpu_steal_s_by_step', {}).values()), 1)} s."
                        if res.get("cpu_steal_s_by_step") is not None else ""))

    g = res.get("goals") or {}
    if g:
        lines += ["", "Goals:", "", "| Goal | Target | Measured | Met |", "|---|---:|---:|:---:|"]
        for name, v in g.items():
            extra = ""
            if v.get("slowest_page") is not None:
                extra = f" (slowest: `{v['slowest_page']}`; over: {', '.join(v.get('pages_over') or []) or 'none'})"
            lines.append(f"| `{name}` — {v['what']}{extra} | {v['target']} | {fmt(v['measured'])} | "
                         f"{verdict(v['met'])} |")
        notes = [v["note"] for v in g.values() if v.get("note")]
        for n in notes:
            lines.append(f"\nNote: {n}.")

    lines += ["", "| Figure | Value | Target | Result |", "|---|---:|---:|:---:|"]
    rows = [
        ("Cold start → home page rendered", "server_cold_start_to_first_render_s", " s"),
        ("  of which: server up (health ok)", "server_health_ok_s", " s"),
        ("Default page (`/training_dynamics`), uncached, compile included", "default_page_uncached_s", " s"),
        ("Default page reload, cached results (median, end to end)", "default_page_cached_rerun_s", " s"),
        ("  of which: browser bootstrap until the script starts (median)", "cached_reload_bootstrap_ms_median", " ms"),
        ("  of which: script run on the server (median)", "cached_reload_script_ms_median", " ms"),
        ("  of which: drawing after the run (median)", "cached_reload_draw_after_run_ms_median", " ms"),
        ("Widget rerun without reload, cached (median, end to end)", "cached_widget_rerun_s", " s"),
        ("  of which: click → script starts (median)", "cached_widget_bootstrap_ms_median", " ms"),
        ("  of which: script run on the server (median)", "cached_widget_script_ms_median", " ms"),
        ("Findings page, cold server (computes the quick protocol)", "findings_quick_uncached_s", " s"),
        ("Findings page after the restart (results cleared, compile cache kept)", "findings_quick_after_restart_s", " s"),
        ("Server RSS after start", "server_rss_after_start_mb", " MB"),
        ("Server RSS after the home page (JAX imported)", "server_rss_after_home_mb", " MB"),
        ("Server peak RSS, first flow (every page)", "server_peak_rss_mb_default_flow", " MB"),
        ("Server peak RSS, first flow without the Findings page", "server_peak_rss_mb_excluding_findings", " MB"),
        ("Server RSS at the end of the first flow", "server_rss_end_of_flow_mb", " MB"),
        ("Default flow total (launch → last page rendered)", "default_flow_total_s", " s"),
        ("Cold start after the restart → home page rendered", "server_cold_start_after_restart_s", " s"),
        ("Server peak RSS, flow after the restart", "server_peak_rss_mb_after_restart_flow", " MB"),
        ("CLI sweep (4 L2 × 30 epochs, n=2000), wall", "cli_sweep_s", " s"),
        ("CLI sweep peak RSS", "cli_sweep_peak_rss_mb", " MB"),
    ]
    for label, key, unit in rows:
        if res.get(key) is None and key not in t:
            continue
        tg = t.get(key)
        lines.append(f"| {label} | {fmt(res.get(key), unit)} | "
                     f"{(tg['target'] + unit) if tg else ''} | {verdict(tg['pass']) if tg else ''} |")

    after = res.get("page_detail_after_restart") or {}
    lines += ["", "Per page, first visit with the default sidebar (in visit order; uncached except "
              "what earlier pages already computed), and again after the restart (results cleared, "
              "JAX compilation cache kept). Stages: seconds the page's progress bar showed each runner "
              "stage (training includes compiling; spectra = per-epoch top-k; spectrum = whole "
              "spectrum; none = script time without a running progress bar). Compiles: XLA "
              "compile-or-load events (training program `jit(_train_grid)` in brackets); new "
              "programs: entries JAX wrote to the compilation cache (real first compilations).", "",
              "| Page | Render (s) | After restart (s) | Bootstrap (ms) | Script (ms) | Stages (s) | "
              "Compiles (train) | New programs | Compile s | Trainings | Spectra | Peak RSS (MB) | "
              "Load avg before | Other processes' CPU-s |",
              "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for path, d in res.get("page_detail", {}).items():
        a = after.get(path) or {}
        lines.append(f"| /{path} | {fmt(d.get('wall_s'))} | {fmt(a.get('wall_s'))} | "
                     f"{fmt(d.get('bootstrap_ms'))} | {fmt(d.get('script_ms'))} | "
                     f"{_stages(d.get('stages_ms'))} | "
                     f"{d.get('compiles', '')} ({d.get('train_compiles', '')}) | {d.get('new_programs', '')} | "
                     f"{fmt(d.get('compile_s'))} | {d.get('trainings', '')} | {d.get('spectra', '')} | "
                     f"{fmt(d.get('rss_peak_mb'))} | {d.get('load_before', '')} | "
                     f"{fmt(d.get('foreign_cpu_s'))} |"
                     + (f" error: {d['error'][:80]}" if d.get("error") else ""))
    if after:
        lines += ["", "After the restart, per page: stages (s), compiles (train), new programs, "
                  "compile s:", ""]
        for path, a in after.items():
            lines.append(f"- /{path}: {fmt(a.get('wall_s'))} s — {_stages(a.get('stages_ms'))}; "
                         f"compiles {a.get('compiles')} ({a.get('train_compiles')}), new programs "
                         f"{a.get('new_programs')}, compile {fmt(a.get('compile_s'))} s")
    for name in ("width", "training_size"):
        if res.get(f"compiles_{name}_page") is None:
            continue
        lines += ["", f"XLA compile-or-load events of `/{name}`'s first visit, by function "
                  f"(count, seconds): " + ", ".join(
                      f"`{k}` {v} ({res.get(f'compile_s_{name}_page_by_fun', {}).get(k, 0):.2f} s)"
                      for k, v in (res.get(f"compiles_{name}_page_by_fun") or {}).items())
                  + f"; new programs: " + ", ".join(
                      f"`{k}` {v}" for k, v in (res.get(f"new_programs_{name}_page_by_fun") or {}).items())
                  + "."]
    prof = res.get("cached_script_profile") or {}
    if prof and "error" not in prof:
        lines += ["", f"Where a cached script run's time goes: `{prof['page']}` through Streamlit's "
                  f"AppTest on the filled cache (new session per run), median "
                  f"{prof['rerun_s_median']} s; stack sampled every ~2 ms ({prof['samples']} samples), "
                  "ms per run" + (" (each sample weighted by the wall time since the previous one)"
                                  if "sampled_s_per_run" in prof else "") + ":", "", "| Innermost frame in this repository | ms | Innermost frame | ms |",
                  "|---|---:|---|---:|"]
        a_, b_ = prof["ms_per_run_by_repo_frame"], prof["ms_per_run_by_innermost_frame"]
        for i in range(min(10, max(len(a_), len(b_)))):
            ra = a_[i] if i < len(a_) else ["", None]
            rb = b_[i] if i < len(b_) else ["", None]
            lines.append(f"| `{ra[0]}` | {fmt(ra[1])} | `{rb[0]}` | {fmt(rb[1])} |")
    ph = res.get("runner_phases") or {}
    if ph and "error" not in ph:
        lines += ["", "Where the default page's time goes: `runner.run(defaults)` in a fresh "
                  f"process, split into phases (config: width {ph['config']['width']}, "
                  f"n={ph['config']['n_train']}, {ph['config']['epochs']} epochs, top-"
                  f"{ph['config']['top_k']}, {ph.get('spectra_method')} spectra of "
                  f"{ph.get('spectra_checkpoints')} checkpoints):", "",
                  "| Phase | Seconds |", "|---|---:|"]
        for key, label in [
            ("import_jax_s", "import jax"),
            ("import_ntk_core_runner_s", "import ntk_core + runner"),
            ("load_split_s", "load the MNIST split"),
            ("train_first_call_s", "train_grid, first call (compile + train)"),
            ("train_warm_s", "train_grid, warm (train only)"),
            ("spectra_first_call_s", "checkpoint_spectra, first call (compile + compute)"),
            ("spectra_warm_s", "checkpoint_spectra, warm"),
            ("kernel_per_checkpoint_warm_s", "  one checkpoint: form the n×n kernel"),
            ("topk_per_checkpoint_cold_start_vector_s", "  one checkpoint: top-k eigensolver (no warm start)"),
            ("runner_run_warm_computed_s", "runner.run warm, computed (train + spectra + store write)"),
            ("runner_run_cache_hit_s", "runner.run, cache hit (store read)"),
            ("store_put_s", "  store write of one run's result"),
            ("store_get_s", "  store read of one run's result"),
        ]:
            if key in ph:
                lines.append(f"| {label} | {fmt(ph[key])} |")
    missed = [k for k, v in t.items() if v["pass"] is False]
    lines += ["", "Targets missed: " + (", ".join(f"`{k}`" for k in missed) if missed else "none") + "."]
    gm = [k for k, v in g.items() if v["met"] is False]
    lines += ["Goals missed: " + (", ".join(f"`{k}`" for k in gm) if gm else "none") + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print ONE JSON object on stdout")
    ap.add_argument("--markdown", metavar="FILE", help="write a Markdown section to FILE")
    ap.add_argument("--hosted", action="store_true", help="server (and CLI) with NTK_HOSTED=1")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of the cached figures (3–5)")
    ap.add_argument("--page-timeout", type=float, default=600.0, help="seconds per page")
    ap.add_argument("--findings-timeout", type=float, default=2400.0,
                    help="seconds for the Findings page (a cold server computes the quick protocol)")
    ap.add_argument("--pages", metavar="NAMES",
                    help="comma-separated page names (file stems of ui.nav.PAGES, e.g. "
                         "home,training_dynamics,width) to visit; the first page is always "
                         "visited (cold start). Default: every page")
    ap.add_argument("--skip-findings", action="store_true", help="do not visit the Findings page")
    ap.add_argument("--skip-restart", action="store_true",
                    help="no restart flow (page_render_after_restart_s)")
    ap.add_argument("--skip-cli", action="store_true", help="no CLI sweep")
    ap.add_argument("--skip-phases", action="store_true", help="no runner phase split")
    ap.add_argument("--skip-profile", action="store_true",
                    help="no sampled profile of a cached script run (AppTest)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the server, the CLI and the phase split "
                         "(what-if runs, e.g. MALLOC_ARENA_MAX=2); repeatable")
    ap.add_argument("--_phase-probe", dest="phase_probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_profile-probe", dest="profile_probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.profile_probe:
        sys.path.insert(0, str(REPO))
        os.chdir(REPO)
        print(json.dumps(profile_probe()))
        return 0
    if args.phase_probe:
        sys.path.insert(0, str(REPO))
        print(json.dumps(phase_probe()))
        return 0
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found", file=sys.stderr)
        return 2

    for item in args.server_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--server-env wants KEY=VALUE, got {item!r}")
        EXTRA_ENV[key] = value
    res = bench(args)
    for name, tg in res["targets"].items():
        log(f"{verdict(tg['pass']):4}  {name} = {tg['value']}  (target {tg['target']})")
    for name, g in res["goals"].items():
        log(f"goal {verdict(g['met']):4}  {name} = {g['measured']}  (target {g['target']})")
    if args.markdown:
        Path(args.markdown).write_text(markdown(res), encoding="utf-8")
        log(f"wrote {args.markdown}")
    if args.json:
        print(json.dumps(res, default=str))
    else:
        print(json.dumps({k: v for k, v in res.items() if k in TARGETS or k in (
            "cached_widget_rerun_s", "page_render_s", "page_render_after_restart_s", "cli_sweep_s",
            "cli_sweep_peak_rss_mb", "server_rss_after_start_mb", "hosted", "goals")},
            indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
