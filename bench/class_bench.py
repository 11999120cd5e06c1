"""NTK Explorer class benchmark: a whole class opens the app at the same moment.

    python bench/class_bench.py --json                  # 8 sessions (seeds 0..7)
    python bench/class_bench.py --json --sessions 2     # a short smoke run

ONE JSON object goes to stdout; progress and logs go to stderr. Everything runs against
127.0.0.1 only, with Debian's chromium driven by Playwright's async API.

1. class    A hosted-mode server (``NTK_HOSTED=1``: one computation at a time, the others
            wait in the process-wide FIFO queue and see their place) on a fresh
            NTK_CACHE_DIR (no results, no JAX compilation cache), with NTK_COMPUTE_LOG and
            NTK_COMPILE_LOG set. After one warm-up visit of the home page (Python and JAX
            imports; no computation), ONE chromium opens N browser contexts (one per
            student) and, at the same moment, every one opens ``/training_dynamics`` with
            a DIFFERENT uncached config (default: width 64, n=500, 10 epochs, seeds
            0..N-1). Recorded per session: the time until its page was rendered (every
            chart drawn, script run over) from the common start, how long its progress
            bar showed "waiting for the server: place k of m", the stages of its script
            run, its charts and exceptions. The server's RSS (process tree, psutil) is
            polled every 0.1 s.
2. alone    A second fresh server and fresh cache, the same warm-up, then the same N
            configs one after another, each alone (a new context each) → their sum.

Goal: the last session of the class finishes within ~1.5× the sum of the N alone; peak
RSS < 700 MB; every session gets its charts, no exception.

"Rendered" is what bench/app_bench.py uses (its DONE_JS): the script run is over, the
status widget is gone, and every Vega-Lite chart has its canvas drawn — checked every
100 ms in each page (not every animation frame: 8 pages polling per frame would take CPU
from the server on 2 cores) and still true 0.5 s later. The browser runs on the same
2 cores as the server (its CPU time is reported): students' browsers would not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import app_bench as AB  # noqa: E402  (the shared server/browser helpers)

T0 = time.perf_counter()
PAGE = "training_dynamics"
CHART = '[data-testid="stVegaLiteChart"]'
# A chart is drawn per panel on the Training dynamics page; fewer means a session lost some.
MIN_CHARTS = 4


def log(msg: str) -> None:
    print(f"[class_bench {time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def configs(args) -> list[dict]:
    base = {"width": args.width, "samples": args.samples, "epochs": args.epochs}
    out = []
    for i in range(args.sessions):
        c = dict(base)
        if args.vary == "seed":
            c["seed"] = args.first_seed + i
        else:  # width: consecutive widths from the base one
            c["width"] = args.width + i
            c["seed"] = args.first_seed
        out.append(c)
    return out


def url(base: str, cfg: dict) -> str:
    return f"{base}/{PAGE}?" + "&".join(f"{k}={v}" for k, v in cfg.items())


def tree_cpu_s(pids_exclude: set[int]) -> float:
    """CPU seconds of this process's descendants (chromium, the Playwright driver) outside
    ``pids_exclude`` (the server)."""
    import psutil

    total = 0.0
    with contextlib.suppress(psutil.Error):
        for c in psutil.Process().children(recursive=True):
            if c.pid in pids_exclude:
                continue
            with contextlib.suppress(psutil.Error):
                t = c.cpu_times()
                total += t.user + t.system
    return total


def server_pids(pid: int) -> set[int]:
    import psutil

    with contextlib.suppress(psutil.Error):
        p = psutil.Process(pid)
        return {pid} | {c.pid for c in p.children(recursive=True)}
    return {pid}


async def wait_rendered(page, timeout_s: float) -> tuple[float, float]:
    """(perf_counter when first seen rendered in its final state, in-page ms)."""
    deadline = time.perf_counter() + timeout_s
    while True:
        left_ms = max(1000.0, (deadline - time.perf_counter()) * 1000)
        handle = await page.wait_for_function(AB.DONE_JS, arg="chart", timeout=left_ms, polling=100)
        t_done = time.perf_counter()
        in_page = await handle.json_value()
        await page.wait_for_timeout(500)
        if await page.evaluate(AB.DONE_JS, "chart") is not None:
            return t_done, in_page
        if time.perf_counter() > deadline:
            raise TimeoutError("page did not settle")


async def session_record(page, t_start: float, t_goto: float, t_done: float, done_ms: float) -> dict:
    events = await page.evaluate("() => window.__ntk.events")
    progress = await page.evaluate("() => window.__ntk.progress")
    running = [t for t, s in events if s == "running"]
    idle = [t for t, s in events if s == "notRunning" and t <= done_ms + 1]
    rec = {"finish_s": round(t_done - t_start, 3), "goto_delay_s": round(t_goto - t_start, 3)}
    if running:
        rec["bootstrap_ms"] = round(running[0], 1)
        if idle and idle[-1] >= running[0]:
            rec["script_ms"] = round(idle[-1] - running[0], 1)
            rec["stages_ms"] = AB.stage_split(progress, running[0], idle[-1])
    rec["queued_s"] = round(rec.get("stages_ms", {}).get("queued", 0.0) / 1000, 3)
    first_work = next((t for t, st, _ in progress if st in ("training", "spectra")), None)
    rec["work_started_s"] = (None if first_work is None
                             else round(t_goto - t_start + first_work / 1000, 3))
    rec["saw_queue_text"] = bool(await page.evaluate("() => window.__ntk.sawQueue"))
    rec["queue_text"] = await page.evaluate("() => window.__ntk.queueText")
    rec["charts"] = await page.locator(CHART).count()
    rec["charts_drawn"] = await page.locator(f"{CHART} canvas, {CHART} svg").count()
    rec["exceptions"] = await page.locator('[data-testid="stException"]').count()
    problems = await page.evaluate(AB.PROBLEMS_JS)
    if problems:
        rec["errors"] = problems
    with contextlib.suppress(Exception):
        rec["best_epoch_line"] = (await page.get_by_text(
            "Lowest validation loss over the whole run").first.inner_text())[:160]
    rec["progress_log"] = [[round(t), st, text[:80]] for t, st, text in progress][:40]
    return rec


async def class_phase(base: str, cfgs: list[dict], timeout_s: float, shots: Path | None,
                      warm_url: str | None, on_start=None, cpu_probe=None) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=AB.CHROMIUM, args=AB.BROWSER_ARGS,
                                           headless=True)
        try:
            warm = None
            if warm_url:  # the server's imports (no computation): one visit of the home page
                ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
                await ctx.add_init_script(AB.INIT_JS)
                p = await ctx.new_page()
                t = time.perf_counter()
                await p.goto(warm_url, wait_until="commit", timeout=timeout_s * 1000)
                h = await p.wait_for_function(AB.DONE_JS, arg="katex", timeout=timeout_s * 1000,
                                              polling=100)
                await h.json_value()
                warm = round(time.perf_counter() - t, 3)
                await ctx.close()
            # One context per student, all created before the start.
            ctxs, pages = [], []
            for _ in cfgs:
                ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
                await ctx.add_init_script(AB.INIT_JS)
                ctxs.append(ctx)
                pages.append(await ctx.new_page())
            go = asyncio.Event()
            shot_taken: dict = {}

            async def one(i: int) -> dict:
                page = pages[i]
                await go.wait()
                t_goto = time.perf_counter()
                try:
                    await page.goto(url(base, cfgs[i]), wait_until="commit", timeout=timeout_s * 1000)
                    t_done, done_ms = await wait_rendered(page, timeout_s)
                    rec = await session_record(page, t_start, t_goto, t_done, done_ms)
                except Exception as exc:
                    rec = {"finish_s": None, "error": f"{type(exc).__name__}: {exc}"[:400]}
                    with contextlib.suppress(Exception):
                        rec["exceptions"] = await page.locator('[data-testid="stException"]').count()
                        rec["charts"] = await page.locator(CHART).count()
                rec["session"] = i
                rec["config"] = cfgs[i]
                if shots is not None:
                    with contextlib.suppress(Exception):
                        await page.screenshot(path=str(shots / f"class_session_{i}.png"), full_page=True)
                return rec

            async def queue_shot() -> None:
                """Screenshot of the first page seen showing its place in the queue."""
                while not go.is_set():
                    await asyncio.sleep(0.05)
                while shots is not None and not shot_taken:
                    for i in reversed(range(len(pages))):
                        with contextlib.suppress(Exception):
                            if await pages[i].evaluate("() => window.__ntk && window.__ntk.sawQueue"):
                                await pages[i].screenshot(path=str(shots / f"class_queued_session_{i}.png"))
                                shot_taken[i] = True
                                return
                    await asyncio.sleep(0.5)

            tasks = [asyncio.create_task(one(i)) for i in range(len(cfgs))]
            watcher = asyncio.create_task(queue_shot()) if shots is not None else None
            await asyncio.sleep(0.2)  # every task is waiting on the event
            if on_start:
                on_start()
            cpu0 = cpu_probe() if cpu_probe else None
            t_start = time.perf_counter()
            go.set()
            recs = await asyncio.gather(*tasks)
            t_end = time.perf_counter()
            browser_cpu = None if cpu0 is None else round(cpu_probe() - cpu0, 1)
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(BaseException):
                    await watcher
            for ctx in ctxs:
                await ctx.close()
            return {"warmup_home_s": warm, "sessions": recs, "wall_s": round(t_end - t_start, 3),
                    "browser_cpu_s": browser_cpu}
        finally:
            await browser.close()


def alone_phase_sync(base: str, cfgs: list[dict], timeout_s: float, warm_url: str | None,
                     on_each=None) -> dict:
    """The same configs one after another, each alone, a new browser context each."""

    async def main():
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=AB.CHROMIUM, args=AB.BROWSER_ARGS,
                                               headless=True)
            try:
                warm = None
                if warm_url:
                    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
                    await ctx.add_init_script(AB.INIT_JS)
                    p = await ctx.new_page()
                    t = time.perf_counter()
                    await p.goto(warm_url, wait_until="commit", timeout=timeout_s * 1000)
                    h = await p.wait_for_function(AB.DONE_JS, arg="katex", timeout=timeout_s * 1000,
                                                  polling=100)
                    await h.json_value()
                    warm = round(time.perf_counter() - t, 3)
                    await ctx.close()
                recs = []
                for i, cfg in enumerate(cfgs):
                    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
                    await ctx.add_init_script(AB.INIT_JS)
                    page = await ctx.new_page()
                    la = AB.loadavg()
                    t0 = time.perf_counter()
                    try:
                        await page.goto(url(base, cfg), wait_until="commit", timeout=timeout_s * 1000)
                        t_done, done_ms = await wait_rendered(page, timeout_s)
                        rec = await session_record(page, t0, t0, t_done, done_ms)
                        rec["wall_s"] = rec.pop("finish_s")
                    except Exception as exc:
                        rec = {"wall_s": None, "error": f"{type(exc).__name__}: {exc}"[:400]}
                    rec.pop("goto_delay_s", None)
                    rec.update(session=i, config=cfg, load_before=la)
                    await ctx.close()
                    if on_each:
                        on_each(rec)
                    recs.append(rec)
                return {"warmup_home_s": warm, "runs": recs}
            finally:
                await browser.close()

    return asyncio.run(main())


def serve(tmp: Path, name: str, args):
    """A fresh hosted server on a fresh cache dir under tmp/name: (proc, base, env, files)."""
    d = tmp / name
    d.mkdir()
    env = AB.server_env(d, hosted=True)
    port = AB.free_port()
    base = f"http://127.0.0.1:{port}"
    out = open(d / "server.log", "w")
    t = time.perf_counter()
    proc = AB.start_server(env, port, out)
    if not AB.wait_health(base, proc, 120):
        AB.stop_server(proc)
        out.close()
        raise RuntimeError("streamlit did not start:\n" + (d / "server.log").read_text()[-3000:])
    log(f"{name}: server on {base} healthy after {time.perf_counter() - t:.2f} s (cache {d / 'cache'})")
    return proc, base, env, out, d


def compile_summary(d: Path) -> dict:
    w = AB.CompileWatch(d / "compile.log", d / "cache" / "jax-compile")
    r = w.since((0, set()))
    return {k: r[k] for k in ("compiles", "train_compiles", "compile_s", "train_compile_s",
                              "new_programs", "compiles_by_fun")}


def bench(args) -> dict:
    cfgs = configs(args)
    res: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": AB.machine(),
                 "code": AB.code_version(), "hosted": True,
                 "command": "python bench/class_bench.py " + " ".join(sys.argv[1:]),
                 "class_sessions_count": len(cfgs), "class_page": PAGE, "class_configs": cfgs,
                 "load_before": AB.loadavg()}
    res["foreign_processes_before"] = AB.foreign_load(AB.own_pids())
    if res["foreign_processes_before"]:
        log(f"other busy processes: {res['foreign_processes_before']}")
    monitor = AB.ForeignMonitor()
    monitor.start()
    tmp = Path(tempfile.mkdtemp(prefix="ntk_class_bench_"))
    shots = None
    if args.screenshots:
        shots = Path(args.screenshots)
        shots.mkdir(parents=True, exist_ok=True)

    # 1. The class: N sessions at once.
    proc, base, env, out, d = serve(tmp, "class", args)
    res["server_env"] = {k: env[k] for k in ("NTK_HOSTED",) if k in env}
    sampler = AB.RssSampler(proc.pid)
    try:
        sampler.phase = monitor.phase = "class_warmup"
        sampler.start()
        res["load_before_class"] = AB.loadavg()
        log(f"class: {len(cfgs)} sessions open /{PAGE} at once: {cfgs}")

        def on_start() -> None:  # right before the sessions are released (after the warm-up)
            sampler.phase = monitor.phase = "class"

        t_class = time.perf_counter()
        cls = asyncio.run(class_phase(base, cfgs, args.timeout, shots,
                                      None if args.no_warmup else base + "/", on_start,
                                      lambda: tree_cpu_s(server_pids(proc.pid))))
        res["class_phase_total_s"] = round(time.perf_counter() - t_class, 3)  # browser start + warm-up + class
        res["class_wall_s"] = cls["wall_s"]
        # chromium + the Playwright driver, from the release of the sessions to the last render
        res["class_browser_cpu_s"] = cls["browser_cpu_s"]
        sampler.phase = monitor.phase = "class_idle"
        sampler.sample()
    finally:
        sampler.stop()
        AB.stop_server(proc)
        out.close()
    res["load_after_class"] = AB.loadavg()
    sessions = cls["sessions"]
    res["class_warmup_home_s"] = cls["warmup_home_s"]
    res["class_sessions"] = sessions
    fin = [s.get("finish_s") for s in sessions]
    res["class_all_finished"] = all(f is not None for f in fin)
    res["class_all_charts"] = all((s.get("charts") or 0) >= MIN_CHARTS
                                  and s.get("charts_drawn", 0) >= (s.get("charts") or 0)
                                  and s.get("finish_s") is not None for s in sessions)
    res["class_exceptions"] = sum(s.get("exceptions") or 0 for s in sessions)
    res["class_errors"] = [e for s in sessions for e in (s.get("errors") or [])
                           + ([s["error"]] if s.get("error") else [])]
    res["class_peak_rss_mb"] = AB.mb(sampler.by_phase.get("class", 0))
    res["class_peak_rss_mb_incl_warmup"] = AB.mb(sampler.peak)
    res["class_rss_peak_by_step_mb"] = {k: AB.mb(v) for k, v in sampler.by_phase.items()}
    res["class_server_cpu_s_by_step"] = sampler.cpu_seconds()
    ok_fin = [f for f in fin if f is not None]
    res["class_last_finish_s"] = max(ok_fin) if res["class_all_finished"] else None
    res["class_first_finish_s"] = min(ok_fin) if ok_fin else None
    res["class_median_finish_s"] = round(statistics.median(ok_fin), 3) if ok_fin else None
    res["class_finish_s"] = fin
    res["class_queued_s"] = [s.get("queued_s") for s in sessions]
    res["class_wait_s"] = res["class_queued_s"]
    res["class_work_started_s"] = [s.get("work_started_s") for s in sessions]
    res["class_queue_text_seen"] = any(s.get("saw_queue_text") for s in sessions)
    res["class_queue_text_sessions"] = sum(1 for s in sessions if s.get("saw_queue_text"))
    res["class_queue_text_example"] = next((s["queue_text"] for s in sessions if s.get("queue_text")), None)
    res["class_compute_counts"] = AB.compute_counts(d / "compute.log")
    res["class_compiles"] = compile_summary(d)
    log(f"class: last finish {res['class_last_finish_s']} s, finishes {fin}, queued {res['class_queued_s']}, "
        f"peak RSS {res['class_peak_rss_mb']} MB, charts ok {res['class_all_charts']}, "
        f"exceptions {res['class_exceptions']}, queue text seen in {res['class_queue_text_sessions']} pages")

    # 2. Each config alone, sequentially, on a fresh server.
    proc, base, env, out, d = serve(tmp, "alone", args)
    sampler = AB.RssSampler(proc.pid)
    try:
        sampler.phase = monitor.phase = "alone"
        sampler.start()
        res["load_before_alone"] = AB.loadavg()
        alone = alone_phase_sync(base, cfgs, args.timeout, None if args.no_warmup else base + "/",
                                 on_each=lambda r: log(f"alone {r['session']}: {r.get('wall_s')} s, "
                                                       f"stages {r.get('stages_ms')}"))
    finally:
        sampler.stop()
        AB.stop_server(proc)
        out.close()
    res["load_after_alone"] = AB.loadavg()
    runs = alone["runs"]
    res["alone_warmup_home_s"] = alone["warmup_home_s"]
    res["alone_runs"] = runs
    res["class_alone_s"] = [r.get("wall_s") for r in runs]
    res["class_alone_script_s"] = [None if r.get("script_ms") is None else round(r["script_ms"] / 1000, 3)
                                   for r in runs]
    all_alone = all(v is not None for v in res["class_alone_s"])
    res["class_sum_alone_s"] = round(sum(res["class_alone_s"]), 3) if all_alone else None
    res["class_sum_alone_script_s"] = (round(sum(res["class_alone_script_s"]), 3)
                                       if all(v is not None for v in res["class_alone_script_s"]) else None)
    res["alone_peak_rss_mb"] = AB.mb(sampler.peak)
    res["alone_compute_counts"] = AB.compute_counts(d / "compute.log")
    res["alone_compiles"] = compile_summary(d)
    res["alone_all_charts"] = all((r.get("charts") or 0) >= MIN_CHARTS for r in runs)
    res["alone_exceptions"] = sum(r.get("exceptions") or 0 for r in runs)
    last, tot = res["class_last_finish_s"], res["class_sum_alone_s"]
    res["class_ratio"] = round(last / tot, 3) if last is not None and tot else None
    res["class_ratio_target"] = args.ratio_target
    res["class_goal_met"] = (res["class_ratio"] is not None and res["class_ratio"] <= args.ratio_target)
    res["goals"] = {
        "class_ratio": {"target": f"<= {args.ratio_target:g}", "measured": res["class_ratio"],
                        "met": res["class_goal_met"],
                        "what": "last session's finish / sum of the sessions' times alone"},
        "class_peak_rss_mb": {"target": "< 700", "measured": res["class_peak_rss_mb"],
                              "met": res["class_peak_rss_mb"] < 700,
                              "what": "server peak RSS (process tree) while the class computes"},
        "class_all_charts": {"target": "true", "measured": res["class_all_charts"],
                             "met": bool(res["class_all_charts"]),
                             "what": f"every session drew its ≥ {MIN_CHARTS} charts"},
        "class_exceptions": {"target": "0", "measured": res["class_exceptions"],
                             "met": res["class_exceptions"] == 0, "what": "stException elements"},
    }
    res.update(monitor.stop())
    res["load_after"] = AB.loadavg()
    res["foreign_processes_after"] = AB.foreign_load(AB.own_pids())
    res["tmp_dir"] = str(tmp)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def markdown(res: dict) -> str:
    m = res["machine"]
    g = res["goals"]
    f = AB.fmt
    lines = [
        "## A whole class at once (hosted mode)",
        "",
        f"`{res['command']}` ({res['started']}): a hosted-mode server (`NTK_HOSTED=1`, "
        f"fresh cache, one computation at a time, FIFO queue) and {res['class_sessions_count']} "
        f"browser contexts of one headless chromium (Playwright async API) that open "
        f"`/{res['class_page']}` at the same moment, each with a different uncached config "
        f"({', '.join(' '.join(f'{k}={v}' for k, v in c.items()) for c in res['class_configs'][:2])}, …). "
        f"Before the class and before the alone runs, one home-page visit warms the server's "
        f"imports (no computation). Then, on a second fresh server and cache, the same "
        f"{res['class_sessions_count']} configs one after another, each alone.",
        "",
        f"Machine: {m['cpu_model']}, {m['logical_cores']} logical cores ({m['physical_cores']} "
        f"physical), {m['ram_gb']} GB RAM; Python {m['python']}, Streamlit {m['streamlit']}, "
        f"JAX {m['jax']}, {m['chromium']}. Load average (1/5/15 min) before the class / after it / "
        f"before the alone runs / after them: {res.get('load_before_class')} / "
        f"{res.get('load_after_class')} / {res.get('load_before_alone')} / {res.get('load_after_alone')}. "
        f"CPU time used by other processes during the run: {res.get('foreign_cpu_s_total')} CPU-s "
        f"({', '.join(f'{k} {v}' for k, v in (res.get('foreign_cpu_s_by_step') or {}).items())}). "
        f"The browser ran on the same 2 cores: {res.get('class_browser_cpu_s')} CPU-s during the class.",
        "",
        "| Goal | Target | Measured | Met |", "|---|---:|---:|:---:|",
    ]
    for name, v in g.items():
        lines.append(f"| `{name}` — {v['what']} | {v['target']} | {f(v['measured'])} | "
                     f"{AB.verdict(v['met'])} |")
    lines += ["", "| Figure | Value |", "|---|---:|"]
    for label, key, unit in [
        ("Last session rendered (from the common start)", "class_last_finish_s", " s"),
        ("First session rendered", "class_first_finish_s", " s"),
        ("Median session rendered", "class_median_finish_s", " s"),
        ("Sum of the sessions alone (end to end, each a fresh context)", "class_sum_alone_s", " s"),
        ("  of which: server script runs", "class_sum_alone_script_s", " s"),
        ("Ratio last / sum alone", "class_ratio", ""),
        ("Server peak RSS during the class (process tree, 0.1 s polls)", "class_peak_rss_mb", " MB"),
        ("Server peak RSS during the alone runs", "alone_peak_rss_mb", " MB"),
        ("Warm-up home page, class server", "class_warmup_home_s", " s"),
        ("Pages that showed \"waiting for the server: place …\"", "class_queue_text_sessions", ""),
        ("Exceptions (stException) over all sessions", "class_exceptions", ""),
    ]:
        lines.append(f"| {label} | {f(res.get(key), unit)} |")
    cc, ac = res.get("class_compute_counts") or {}, res.get("alone_compute_counts") or {}
    lines.append(f"| Trainings / spectra computed, class (NTK_COMPUTE_LOG) | "
                 f"{cc.get('trainings')} / {cc.get('spectra')} |")
    lines.append(f"| Trainings / spectra computed, alone | {ac.get('trainings')} / {ac.get('spectra')} |")
    for what, c in (("class", res.get("class_compiles") or {}), ("alone", res.get("alone_compiles") or {})):
        lines.append(f"| XLA compile-or-load events, {what} (training program; new programs; compile s) | "
                     f"{c.get('compiles')} ({c.get('train_compiles')}; {c.get('new_programs')}; "
                     f"{f(c.get('compile_s'))}) |")
    if res.get("class_queue_text_example"):
        lines += ["", f"A queued page showed: “{res['class_queue_text_example']}”."]
    lines += ["", "Per session (class: from the common start; alone: each visit on its own). Stages: "
              "seconds the page's progress bar showed each stage (queued = waiting for the server; "
              "none = script time without a running progress bar).", "",
              "| Session | Config | Class: rendered (s) | Queued (s) | Work started (s) | Stages (s) | "
              "Charts | Exceptions | Alone (s) | Alone stages (s) |",
              "|---:|---|---:|---:|---:|---|---:|---:|---:|---|"]
    alone = {r["session"]: r for r in res.get("alone_runs") or []}
    for s in res.get("class_sessions") or []:
        a = alone.get(s["session"], {})
        cfg = " ".join(f"{k}={v}" for k, v in s["config"].items())
        lines.append(f"| {s['session']} | {cfg} | {f(s.get('finish_s'))} | {f(s.get('queued_s'))} | "
                     f"{f(s.get('work_started_s'))} | {AB._stages(s.get('stages_ms'))} | "
                     f"{s.get('charts')} | {s.get('exceptions')} | {f(a.get('wall_s'))} | "
                     f"{AB._stages(a.get('stages_ms'))} |" + (f" error: {s['error'][:80]}" if s.get("error") else ""))
    gm = [k for k, v in g.items() if v["met"] is False]
    lines += ["", "Goals missed: " + (", ".join(f"`{k}`" for k in gm) if gm else "none") + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print ONE JSON object on stdout")
    ap.add_argument("--sessions", type=int, default=8, help="browser sessions (students)")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--vary", choices=("seed", "width"), default="seed",
                    help="what differs between the sessions' configs")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--ratio-target", type=float, default=1.5)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per session")
    ap.add_argument("--no-warmup", action="store_true", help="no home-page visit before the class")
    ap.add_argument("--screenshots", metavar="DIR", help="save each session's page and a queued one")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--markdown", metavar="FILE", help="write a Markdown section to FILE")
    args = ap.parse_args(argv)
    if not Path(AB.CHROMIUM).exists():
        print(f"{AB.CHROMIUM} not found", file=sys.stderr)
        return 2
    res = bench(args)
    for name, g in res["goals"].items():
        log(f"goal {AB.verdict(g['met']):4}  {name} = {g['measured']}  (target {g['target']})")
    if args.markdown:
        Path(args.markdown).write_text(markdown(res), encoding="utf-8")
        log(f"wrote {args.markdown}")
    if args.json:
        print(json.dumps(res, default=str))
    else:
        print(json.dumps({k: v for k, v in res.items() if k.startswith("class_") and k not in (
            "class_sessions",)}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
