"""Widgets and plots for the notebooks: one module per lesson, shared by every notebook that needs it.

Each function takes plain data (or a ``LabClient``) and returns a plotly figure, an ipywidget or a
pandas frame, so a notebook cell stays one line and the logic is tested like any other code.
Importing this package imports nothing heavy; each module imports plotly/ipywidgets itself.
"""
