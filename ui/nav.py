"""The app's pages, in menu order (used by app.py and by a page run without it)."""

from __future__ import annotations

import streamlit as st

# (file, menu title, icon); the first one is the default page.
PAGES = (
    ("pages/home.py", "What is the NTK?", ":material/school:"),
    ("pages/findings.py", "Findings", ":material/fact_check:"),
    ("pages/spectrum_vs_l2.py", "Spectrum vs L2", ":material/bar_chart:"),
    ("pages/training_dynamics.py", "Training dynamics", ":material/timeline:"),
    ("pages/regularization_grid.py", "Regularization grid", ":material/grid_view:"),
    ("pages/training_size.py", "Training-set size", ":material/dataset:"),
    ("pages/width.py", "Width", ":material/width:"),
    ("pages/spectrum_explorer.py", "Spectrum explorer", ":material/insights:"),
    ("pages/kernel_motion.py", "Kernel motion", ":material/moving:"),
    ("pages/infinite_width.py", "Infinite width", ":material/all_inclusive:"),
    ("pages/linearized.py", "Linearized dynamics", ":material/show_chart:"),
    ("pages/stability.py", "Stability", ":material/bolt:"),
)


def pages() -> list:
    """Fresh ``st.Page`` objects for ``st.navigation``."""
    return [st.Page(path, title=title, icon=icon, default=(i == 0))
            for i, (path, title, icon) in enumerate(PAGES)]
