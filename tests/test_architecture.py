"""The house's import rules, checked on the source (static) and on a live import.

app.py → pages/ → ui/ → runner/ → (cache/, ntk_core/). Nothing points up: ntk_core is
pure numerics (it imports none of runner, cache, ui, pages, streamlit), cache imports
none of runner/ui/ntk_core/streamlit, runner imports neither ui nor streamlit.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("pages", "ui", "runner", "cache", "ntk_core")
FORBIDDEN = {
    "ntk_core": {"runner", "cache", "ui", "pages", "streamlit", "app"},
    "cache": {"runner", "ui", "pages", "streamlit", "ntk_core", "app"},
    "runner": {"ui", "pages", "streamlit", "app"},
    "ui": {"pages", "app"},
}


def _imports(path: Path) -> set[str]:
    """Top-level package names imported anywhere in a file (also inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_up(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    bad = {str(f.relative_to(ROOT)): sorted(_imports(f) & FORBIDDEN[package]) for f in files}
    bad = {f: names for f, names in bad.items() if names}
    assert not bad, f"upward imports from {package}: {bad}"


def test_the_checker_catches_an_upward_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def g():\n    from runner import run\n    import streamlit as st\n")
    assert _imports(f) & FORBIDDEN["ntk_core"] == {"runner", "streamlit"}


def test_importing_the_numerics_loads_nothing_above_them():
    code = ("import sys, ntk_core; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'runner', 'cache', 'ui', 'streamlit', 'pages'}))")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_public_api_lists_each_name_once_and_every_name_exists():
    import cache
    import ntk_core
    import runner

    for mod in (ntk_core, runner, cache):
        names = list(mod.__all__)
        assert len(names) == len(set(names)), mod.__name__
        missing = [n for n in names if not hasattr(mod, n)]
        assert not missing, (mod.__name__, missing)
