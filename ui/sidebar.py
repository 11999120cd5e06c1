"""The global sidebar: defined once in app.py, read by every page through :func:`current`.

Widgets are bound to the URL (``bind="query-params"``) under the keys of
:data:`ui.params.URL_KEYS`, so a shared link opens the same view. URL values are
untrusted: each whitelisted key is validated by :func:`ui.params.check_url` before the
widgets are created; a rejected value is reported (naming the parameter, its allowed
range and the nearest allowed value) and the widget keeps its last valid value or
default (Streamlit's binding itself drops values outside the widget's bounds).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
from typing import Any, Iterator

import streamlit as st

import runner
from ui import params as P

# The view of the current script run, set by app.py around page.run(). A page that finds
# it unset was executed without app.py (see :func:`current`).
_FRAME: contextvars.ContextVar["View | None"] = contextvars.ContextVar("ntk_view", default=None)
_LAST_VALID_KEY = "_ntk_last_valid_config"
_ISSUES_KEY = "_ntk_url_issues"


@dataclasses.dataclass(frozen=True)
class View:
    """What every page needs from the sidebar.

    Attributes:
      config: validated experiment configuration.
      norm: displayed normalization, "Θ" or "Θ/n".
      limits: resource caps in force.
    """

    config: runner.ExperimentConfig
    norm: str
    limits: runner.Limits

    @property
    def per_n(self) -> bool:
        return self.norm == P.NORM_PER_N


def _cache_dir() -> str:
    return os.environ.get("NTK_CACHE_DIR", "")


@st.cache_resource(show_spinner=False)
def _setup_process(directory: str) -> bool:
    runner.tune_allocator()  # a long-lived server: hand freed memory back to the OS
    runner.configure_jax_cache()
    return True


@st.cache_resource(show_spinner=False)
def _open_store(directory: str):
    return runner.open_store(directory or None)


def store():
    """The results store, opened once per process (and per NTK_CACHE_DIR)."""
    return _open_store(_cache_dir())


def setup() -> None:
    """One-time process setup: glibc allocator tuning and JAX's persistent compilation cache."""
    _setup_process(_cache_dir())


def read_limits() -> runner.Limits:
    """The resource caps from the ``NTK_*`` environment; a bad value stops every page with
    a message naming the variable and its allowed values (never a traceback)."""
    try:
        return runner.Limits.from_env()
    except runner.ConfigError as exc:
        st.error(f"The server's configuration is invalid: environment variable {exc}. "
                 "Fix it and restart the app.", icon="⚠️")
        st.stop()
        raise  # not reached: st.stop() ends the script run


def page_config() -> None:
    st.set_page_config(page_title="NTK Explorer", page_icon="🧠", layout="wide")


def _url_overflow_is_invalid() -> None:
    """Streamlit 1.67 seeds an int ``number_input`` from the URL with ``int(float(v))``; for
    ``?width=1e400`` that raises OverflowError, which its seeding does not catch (it treats
    ValueError/TypeError/IndexError as "invalid URL value: clear it and use the default").
    Re-raise it as ValueError so a bad URL gets that same treatment instead of a traceback
    (``P.check_url`` has already told the user). Idempotent; the only Streamlit patch."""
    from streamlit.elements.widgets import number_input as ni

    orig = ni.NumberInputSerde.deserialize
    if getattr(orig, "_ntk_overflow_is_invalid", False):
        return

    def deserialize(self, ui_value):
        try:
            return orig(self, ui_value)
        except OverflowError as exc:
            raise ValueError(f"not a finite number: {exc}") from exc

    deserialize._ntk_overflow_is_invalid = True
    ni.NumberInputSerde.deserialize = deserialize


def _widget(f: P.Field, container) -> Any:
    common = dict(key=f.key, help=f.help or None, bind="query-params")
    if f.kind == "int":
        return container.number_input(f.label, min_value=int(f.lo), max_value=int(f.hi),
                                      value=int(f.default), step=int(f.step or 1), **common)
    if f.kind == "float":
        return container.number_input(f.label, min_value=float(f.lo), max_value=float(f.hi),
                                      value=float(f.default), step=float(f.step or 0.01),
                                      format="%g", **common)
    labels = dict(zip(f.options, f.labels or f.options))
    return container.radio(f.label, f.options, index=f.options.index(f.default),
                           format_func=labels.__getitem__, horizontal=True, **common)


# (group title, rows of keys); two keys on a row share it in two columns.
_GROUPS = (
    ("Model and data", (("arch", "depth"), ("width", "samples"), ("param",), ("data",), ("seed",))),
    ("Training", (("epochs", "lr"), ("opt",), ("batch",))),
    ("Regularization", (("reg",), ("l",), ("wd",))),
    ("Spectrum", (("topk",), ("norm",))),
)


def render() -> View:
    """Draws the sidebar (once per run, from app.py, before the page runs); returns the view.

    Also writes any URL or config problems at the top of the main area.
    """
    limits = read_limits()
    _url_overflow_is_invalid()
    # A hosted demo's visitors never see exception details (the server log keeps them).
    st.set_option("client.showErrorDetails", "none" if limits.is_hosted else "full")
    specs = {f.key: f for f in P.fields(limits)}

    # 1. Untrusted URL values: whitelist + validate before the widgets read them.
    raw = {k: st.query_params.get_all(k) for k in P.URL_KEYS if k in st.query_params}
    issues, accepted = P.check_url(raw, limits)
    for key, value in accepted.items():
        # First run of this widget: seed it with the parsed value, so spellings the engine
        # accepts but the widget would drop (e.g. reg=l2, width=64.0) still take effect.
        if key not in st.session_state:
            st.session_state[key] = value

    # 2. The widgets.
    sb = st.sidebar
    sb.markdown("### Experiment")
    values: dict[str, Any] = {}
    for title, rows in _GROUPS:
        sb.markdown(f"**{title}**")
        for row in rows:
            slots = sb.columns(len(row)) if len(row) > 1 else [sb]
            for key, slot in zip(row, slots):
                values[key] = _widget(specs[key], slot)
    sb.caption("Every setting is kept in the page URL: copy it to share this exact view.")

    # 3. One validated config (falls back to the last valid one).
    messages: list[tuple[str, str]] = []
    try:
        config = P.config_from_values(values, limits)
        st.session_state[_LAST_VALID_KEY] = config
    except runner.ConfigError as exc:
        config = st.session_state.get(_LAST_VALID_KEY) or _safe_default(limits)
        messages.append(("error", f"Invalid setting: {exc}. Using the last valid configuration "
                                  f"({_describe(config)})."))

    if issues:
        st.session_state[_ISSUES_KEY] = (
            [i.message(values.get(i.key)) for i in issues], config)
    saved = st.session_state.get(_ISSUES_KEY)
    if saved and saved[1] == config:
        messages = [("warning", m) for m in saved[0]] + messages
    elif saved:
        del st.session_state[_ISSUES_KEY]  # the user moved on: stop repeating old URL problems

    for kind, text in messages:
        (st.error if kind == "error" else st.warning)(text, icon="⚠️")

    s = store()
    with sb.expander("Cache", expanded=not s.enabled):
        if s.enabled:
            st.caption(f"Results are cached on disk in `{s.directory}`: reruns are instant.")
        else:
            st.caption("Cache disabled: results are computed but not saved.")
        if s.notice:
            st.warning(s.notice)

    return View(config=config, norm=values.get("norm", P.NORM_RAW), limits=limits)


def _safe_default(limits: runner.Limits) -> runner.ExperimentConfig:
    """The default config; if even that breaks the limits (tiny memory caps), the raw
    defaults, so the pages can still render and report the runner's error."""
    try:
        return P.default_config(limits)
    except runner.ConfigError:
        return runner.ExperimentConfig(**{f.field: f.default for f in P.fields(limits)
                                      if f.field is not None})


def _describe(c: runner.ExperimentConfig) -> str:
    return (f"{c.arch_label}, n={c.n_train}, epochs={c.epochs}, lr={c.lr:g}, "
            f"{c.optimizer_label}, {c.regularizer_label}, seed={c.seed}, top-k={c.top_k}")


@contextlib.contextmanager
def frame(view: View) -> Iterator[None]:
    """app.py runs the page inside this, so :func:`current` returns this run's view."""
    token = _FRAME.set(view)
    try:
        yield
    finally:
        _FRAME.reset(token)


def current_limits() -> runner.Limits:
    """The limits of this script run: the sidebar's, or read afresh outside a frame."""
    view = _FRAME.get()
    return view.limits if view is not None else read_limits()


def current() -> View:
    """The view the sidebar produced on this run (every page calls this first).

    The one place that knows about Streamlit's legacy multipage mode (Streamlit 1.67.0):
    until the first ``st.navigation`` call of a server process, ``PagesManager`` sets the
    process-wide ``uses_pages_directory`` because a ``pages/`` folder sits next to app.py,
    and ``ScriptRunner`` then runs the requested ``pages/<name>.py`` without app.py (a deep
    link to a page on a fresh server; AppTest re-enables the mode before every run). No
    config option turns this off, and the folder name is part of this project's design. A
    page in that situation registers the app's navigation, which ends the mode for the
    process, and reruns, so it runs again through app.py with app.py's sidebar.
    """
    view = _FRAME.get()
    if view is None:
        from ui import nav

        st.navigation(nav.pages(), position="hidden")
        st.rerun()
    return view
