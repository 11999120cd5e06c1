"""Shared helpers of the Streamlit pages: sidebar, runner calls with progress,
DataFrame reshaping and Altair charts.

Imports flow one way: pages → ui → runner. Nothing in ntk_core or the cache is
imported by pages except the small spectral helpers used in :mod:`ui.data`.
"""
