"""Shared helpers of the Streamlit pages: sidebar, runner calls with progress,
DataFrame reshaping and Altair charts.

Imports flow one way: pages → ui → runner (and the pure spectral helpers of ntk_core
used by :mod:`ui.data`). Pages import only ``ui``.
"""
