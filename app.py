"""NTK Explorer: see the empirical Neural Tangent Kernel of one-hidden-layer ReLU MLPs
trained on MNIST.

Run with ``streamlit run app.py``. The sidebar is defined once, here, so its values
persist across pages and live in the URL; each page reads it through
``ui.sidebar.current()``.
"""

import streamlit as st

from ui import nav, sidebar

sidebar.page_config()  # title "NTK Explorer", wide layout
sidebar.setup()  # JAX persistent compilation cache (once per process)

page = st.navigation(nav.pages())
view = sidebar.render()
with sidebar.frame(view):
    page.run()
