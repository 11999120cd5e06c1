"""Theory pages: each page's default protocol uncached and cached, on this machine.

    python bench/theory_bench.py                      # every page, JSON to stdout and
                                                      # bench/last_theory_bench.json
    python bench/theory_bench.py --only kernel-motion # a subset (comma-separated)
    python bench/theory_bench.py --no-page            # skip the Streamlit AppTest step
    python bench/theory_bench.py --hosted --no-page --out bench/last_theory_bench_hosted.json

Per page (entries of ``PAGES``; a page is a CLI command plus its Streamlit file):

* ``uncached``: ``python -m ntk_core <command> --quick --json -q`` in a fresh subprocess with
  an empty cache dir — the page's default protocol computed from nothing (imports, XLA
  compilation, training through the shared runner, the measurements). Wall time, CPU time
  (user + sys of the child) and the child's peak RSS (GNU time); ``compute_seconds`` is the runner
  call's own time from the JSON.
* ``cached_cli``: the same command again (a cache hit): the process's wall time (mostly
  Python/JAX imports) and the runner call's own ``seconds`` from the JSON.
* ``cached_page``: the page in Streamlit's AppTest on that cache: first visit (includes
  the page's imports) and a rerun (the script time a user waits for on a cached page).

Load averages are recorded before and after each page: on the shared 2-core machine other
processes inflate wall times, so read the figures with the load next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "last_theory_bench.json"

# command → Streamlit page file. Other theory pages add one line each.
PAGES = {
    "kernel-motion": "pages/kernel_motion.py",
    "infinite-width": "pages/infinite_width.py",
    "linearized": "pages/linearized.py",
    "stability": "pages/stability.py",
}

_CLEAN = ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_EPOCHS", "NTK_MAX_TOPK",
          "NTK_MAX_DENSE_N", "NTK_MAX_GRID", "NTK_MAX_MEMORY_MB", "NTK_THEORY_QUICK")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _env(cache_dir: Path, hosted: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    env.update(NTK_CACHE_DIR=str(cache_dir), JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    if hosted:
        env["NTK_HOSTED"] = "1"
    return env


def _cli(command: str, env: dict[str, str]) -> dict:
    """One CLI call in a fresh process: wall, CPU and peak RSS of that child, and its JSON."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "ntk_core", command, "--quick", "--json", "-q"]
    timer = ["/usr/bin/time", "-f", "MAXRSS_KB %M"] if Path("/usr/bin/time").exists() else []
    p = subprocess.run(timer + cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{command} failed: {p.stderr[-2000:]}")
    obj = json.loads(p.stdout)
    return {"wall_s": round(wall, 2),
            "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2),
            # Peak RSS of this child (GNU time), or None without /usr/bin/time.
            "peak_rss_mb": next((round(int(line.split()[1]) / 1024, 1) for line in p.stderr.splitlines()
                                 if line.startswith("MAXRSS_KB ")), None),
            "status": obj["status"], "runner_seconds": obj["seconds"],
            "compute_seconds": obj["compute_seconds"], "config_hash": obj["config_hash"],
            "protocol": obj["protocol_settings"],
            "verdicts": {f"{v['id']}/{v['parameterization']}"
                         + (f"/lr={v['lr']:g}" if v.get("lr") is not None else ""): v["verdict"]
                         for v in obj["verdicts"]}}


def _page(page: str, cache_dir: Path) -> dict:
    """The page in AppTest on a filled cache: first visit and a rerun, script time."""
    from streamlit.testing.v1 import AppTest

    old = {k: os.environ.get(k) for k in _CLEAN + ("NTK_CACHE_DIR",)}
    for k in _CLEAN:
        os.environ.pop(k, None)
    os.environ["NTK_CACHE_DIR"] = str(cache_dir)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.run()
        t0 = time.monotonic()
        at.switch_page(page)
        at.run()
        first = time.monotonic() - t0
        reruns = []
        for _ in range(3):
            t0 = time.monotonic()
            at.run()
            reruns.append(time.monotonic() - t0)
        ok = not at.exception and "loaded from the cache" in " ".join(str(c.value) for c in at.caption)
        return {"first_visit_s": round(first, 3), "rerun_s_min": round(min(reruns), 3),
                "rerun_s_all": [round(r, 3) for r in reruns], "loaded_from_cache": bool(ok),
                "charts": len(list(at.get("vega_lite_chart")))}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated commands (default: all)")
    ap.add_argument("--no-page", action="store_true", help="skip the AppTest step")
    ap.add_argument("--hosted", action="store_true", help="NTK_HOSTED=1 (hosted caps and memory "
                    "budget; the AppTest step then runs with the default limits)")
    ap.add_argument("--out", default=str(OUT), help=f"JSON file to write (default {OUT})")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(PAGES)
    unknown = [n for n in names if n not in PAGES]
    if unknown:
        ap.error(f"--only: unknown {unknown}; allowed: {', '.join(PAGES)}")
    result = {"machine": _machine(), "hosted": bool(args.hosted), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "pages": {}}
    for name in names:
        with tempfile.TemporaryDirectory(prefix="theory-bench-") as tmp:
            cache = Path(tmp) / "cache"
            env = _env(cache, args.hosted)
            row: dict = {"load_before": os.getloadavg()}
            _say(f"{name}: uncached …")
            row["uncached"] = _cli(name, env)
            _say(f"{name}: uncached {row['uncached']['wall_s']} s wall; cached …")
            row["cached_cli"] = _cli(name, env)
            if not args.no_page:
                row["cached_page"] = _page(PAGES[name], cache)
            row["load_after"] = os.getloadavg()
            result["pages"][name] = row
            _say(f"{name}: {json.dumps({k: v for k, v in row.items() if k != 'uncached'})[:400]}")
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    text = json.dumps(result, indent=1)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
