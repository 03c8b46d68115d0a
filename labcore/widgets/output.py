"""Filling an ``ipywidgets.Output`` without capturing a running cell's output.

``with out: display(...)`` while a cell runs intermittently stalls headless execution — nbclient
waits forever for the reply of a cell that captured widget output (jupyter/nbclient#312) — and
``feedlab check`` runs every notebook headless. So widgets set their outputs directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ipywidgets
    import plotly.graph_objects as go


def figure_output(fig: go.Figure) -> dict[str, Any]:
    """A plotly figure as a ``display_data`` output for an ``ipywidgets.Output``.

    ``Output.append_display_data(fig)`` would not do: formatting a figure runs its
    ``_ipython_display_``, which shows it in the cell as well, outside the widget.
    """
    import json

    title = fig.layout.title.text or "figure"
    return {
        "output_type": "display_data",
        "data": {"application/vnd.plotly.v1+json": json.loads(fig.to_json()), "text/plain": f"<plotly: {title}>"},
        "metadata": {},
    }


def show(output: ipywidgets.Output, *items: Any) -> None:
    """Replace ``output``'s content with ``items``: plotly figures, DataFrames, anything displayable."""
    import plotly.graph_objects as go

    output.outputs = ()
    for item in items:
        if isinstance(item, go.Figure):
            output.outputs += (figure_output(item),)
        else:
            output.append_display_data(item)
