"""The command line, ``python -m ntk_core``, exercised through real subprocesses.

Kept small (width 8, 100 samples, 3 epochs). The result-store tests share one
module-scoped cache directory (so JAX's persistent compile cache, which lives under it,
is reused across processes) and use configs no other test here touches; the
``--no-cache`` test gets its own empty directory.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--width", "8", "--samples", "100", "--n-val", "50", "--epochs", "3"]
EPOCHS = 3
PER_EPOCH = ("train_loss", "val_loss", "val_acc", "step_norm", "rel_change", "lambda_max", "trace", "topk",
             "lanczos_residual", "lanczos_converged")
SCALARS = ("best_epoch", "stop_epoch", "restore_epoch", "diverged_at", "spectrum_method", "data_source", "notice",
           "normalization", "config", "status")


def _env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["NTK_CACHE_DIR"] = str(cache_dir)
    env["JAX_PLATFORMS"] = "cpu"
    for var in ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_EPOCHS", "NTK_MAX_TOPK",
                "NTK_MAX_DENSE_N", "NTK_MAX_GRID"):
        env.pop(var, None)
    return env


def cli(cache_dir: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntk_core", *args], cwd=ROOT, env=_env(cache_dir),
                          capture_output=True, text=True, timeout=timeout)


def run_json(cache_dir: Path, *args: str) -> dict:
    p = cli(cache_dir, "run", *SMALL, *args, "--json")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    return json.loads(p.stdout)  # exactly one JSON document on stdout


def store_entries(cache_dir: Path) -> int:
    from cache import ResultStore

    with ResultStore(cache_dir) as store:
        return len(store)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli_cache")


def _strict_json(text: str):
    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=reject)


def test_run_json_fields_then_cache_hit(shared_cache):
    first = run_json(shared_cache)
    _strict_json(json.dumps(first))
    for key in PER_EPOCH + SCALARS:
        assert key in first, key
    for key in PER_EPOCH:
        assert len(first[key]) == EPOCHS + 1, key
    assert all(len(row) == 10 for row in first["topk"])  # default top_k
    assert first["status"] == "computed"
    assert first["diverged_at"] is None
    assert first["config"]["n_train"] == 100 and first["config"]["width"] == 8
    assert first["lambda_max"] == [row[0] for row in first["topk"]]
    # Every epoch's top-k solve converged, and its measured residual says so.
    assert all(first["lanczos_converged"]) and max(first["lanczos_residual"]) < 1e-4
    assert first["restore_epoch"] <= (first["stop_epoch"] if first["stop_epoch"] is not None else EPOCHS)
    assert "not divided by n" in first["normalization"].lower()
    assert "standard parameterization" in first["normalization"]

    second = run_json(shared_cache)
    assert second["status"] == "hit"
    assert {k: v for k, v in second.items() if k != "status"} == \
        {k: v for k, v in first.items() if k != "status"}


def test_no_cache_computes_and_writes_nothing(tmp_path):
    out = run_json(tmp_path, "--no-cache", "--quiet")
    assert out["status"] == "uncached"
    assert len(out["train_loss"]) == EPOCHS + 1
    assert list(tmp_path.iterdir()) == []  # no store, no compile cache, nothing
    assert store_entries(tmp_path) == 0


def test_sweep_csv_prewarms_the_app_cache(shared_cache, tmp_path):
    # seed 1: no other test uses these configs, so both points are computed here.
    out_file = tmp_path / "l2.csv"
    p = cli(shared_cache, "sweep", "--vary", "l2", "--values", "0", "1e-3", *SMALL, "--seed", "1",
            "--output", str(out_file))
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert list(rows[0]) == ["vary", "value", "epoch", "train_loss", "val_loss", "val_acc", "lambda_max",
                             "trace", "step_norm", "rel_change", "diverged_at", "status"]
    assert len(rows) == 2 * (EPOCHS + 1)
    assert [(r["vary"], float(r["value"]), int(r["epoch"])) for r in rows] == \
        [("l2", v, e) for v in (0.0, 1e-3) for e in range(EPOCHS + 1)]
    assert {r["status"] for r in rows} == {"computed"}
    assert all(r["diverged_at"] == "" for r in rows)

    # The app's runner now finds the point in the cache.
    hit = run_json(shared_cache, "--reg", "l2", "--reg-strength", "1e-3", "--seed", "1")
    assert hit["status"] == "hit"
    sweep_row = [r for r in rows if float(r["value"]) == 1e-3]
    assert [float(r["lambda_max"]) for r in sweep_row] == hit["lambda_max"]

    # Same sweep again, comma-separated, to stdout: all hits, same numbers.
    again = cli(shared_cache, "sweep", "--vary", "l2", "--values", "0,1e-3", *SMALL, "--seed", "1", "-q")
    assert again.returncode == 0, again.stderr
    rows2 = list(csv.DictReader(io.StringIO(again.stdout)))
    assert {r["status"] for r in rows2} == {"hit"}
    assert [{k: v for k, v in r.items() if k != "status"} for r in rows2] == \
        [{k: v for k, v in r.items() if k != "status"} for r in rows]


def test_divergence_is_success_and_cache_dir_flag(shared_cache, tmp_path):
    store_dir = tmp_path / "store"
    out = run_json(shared_cache, "--lr", "100", "--cache-dir", str(store_dir))
    assert isinstance(out["diverged_at"], int) and 1 <= out["diverged_at"] <= EPOCHS
    assert out["train_loss"][out["diverged_at"]] is None  # NaN → null
    assert out["topk"][EPOCHS] == [None] * 10
    assert out["train_loss"][0] is not None
    assert out["status"] == "computed"
    # --cache-dir overrides NTK_CACHE_DIR for the store and JAX's compile cache.
    assert store_entries(store_dir) == 1
    assert (store_dir / "jax-compile").is_dir()


def test_unusable_cache_prints_notice_but_succeeds(shared_cache, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    p = cli(shared_cache, "--cache-dir", str(not_a_dir), "run", *SMALL, "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] == "uncached"
    assert "cache disabled" in p.stderr and "Traceback" not in p.stderr


BAD = {
    "width_negative": (["run", "--width", "-3"], "width"),
    "width_text": (["run", "--width", "abc"], "width"),
    "samples_huge": (["run", "--samples", "1e12"], "n_train"),
    "lr_nan": (["run", "--lr", "nan"], "lr"),
    "lr_zero": (["run", "--lr", "0"], "lr"),
    "reg_unknown": (["run", "--reg", "l3"], "reg"),
    "vary_unknown": (["sweep", "--vary", "foo", "--values", "1"], "vary"),
    "values_empty": (["sweep", "--vary", "l2", "--values"], "values"),
}


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory):
    """Starts every bad-input process at once (each exits during validation)."""
    cache_dir = tmp_path_factory.mktemp("cli_bad")
    procs = {name: subprocess.Popen([sys.executable, "-m", "ntk_core", *args], cwd=ROOT,
                                    env=_env(cache_dir), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for name, (args, _) in BAD.items()}
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        out[name] = (p.returncode, stdout, stderr)
    return out, cache_dir


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_exits_2_with_one_line(bad_results, name):
    results, cache_dir = bad_results
    code, stdout, stderr = results[name]
    param = BAD[name][1]
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert param in lines[0] and "allowed" in lines[0], lines[0]
    assert store_entries(cache_dir) == 0  # validation happens before the store is touched


def test_every_config_field_has_a_flag():
    import runner
    from runner import cli as runner_cli

    flagged = {field for _, field, _, _ in runner_cli.CONFIG_FLAGS}
    assert flagged == {f.name for f in dataclasses.fields(runner.ExperimentConfig)}


def test_unexpected_error_is_one_line_and_exit_1_traceback_only_with_debug(tmp_path):
    # A real failure outside validation: JAX cannot start the backend it is told to use.
    env = {**_env(tmp_path), "JAX_PLATFORMS": "tpu"}
    args = [sys.executable, "-m", "ntk_core", "run", "--width", "4", "--samples", "50",
            "--epochs", "1", "--no-cache", "-q"]
    p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stdout == ""
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unexpected RuntimeError" in lines[0] and "--debug" in lines[0], p.stderr
    d = subprocess.run([*args, "--debug"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert d.returncode == 1 and "Traceback" in d.stderr


@pytest.mark.parametrize("var,value", [("NTK_MAX_N", "abc"), ("NTK_HOSTED", "maybe"),
                                       ("NTK_MAX_MEMORY_MB", "-5"), ("NTK_MAX_GRID", "1e99")])
def test_bad_environment_value_is_named_exit_2(tmp_path, var, value):
    env = {**_env(tmp_path), var: value}
    p = subprocess.run([sys.executable, "-m", "ntk_core", "run", "--no-cache"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and var in lines[0] and "allowed" in lines[0], p.stderr


def test_negative_scientific_values_reach_validation_not_argparse(tmp_path):
    p = cli(tmp_path, "run", "--reg", "l2", "--reg-strength", "-1e-3")
    assert p.returncode == 2 and "--reg-strength" in p.stderr and "[0, 100]" in p.stderr
    p = cli(tmp_path, "sweep", "--vary", "l2", "--values", "0", "-1e-3", *SMALL)
    assert p.returncode == 2 and "--values" in p.stderr and "-1e-3" in p.stderr
    p = cli(tmp_path, "run", "--width", "-3")  # plain negatives: argparse takes them itself
    assert p.returncode == 2 and "--width" in p.stderr and "[1, 4096]" in p.stderr


def test_python_m_runner_is_the_same_command(tmp_path):
    p = subprocess.run([sys.executable, "-m", "runner", "run", "--width", "-3"], cwd=ROOT,
                       env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--width" in p.stderr


def test_numeric_package_does_not_import_runner_or_cache(tmp_path):
    code = ("import sys, ntk_core; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('runner', 'cache', 'streamlit')))")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(tmp_path),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
