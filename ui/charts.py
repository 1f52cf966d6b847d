"""Plotly figures the pages share."""
from __future__ import annotations

import plotly.graph_objects as go

from core.pipeline import FaceResult
from core.render import EMOTION_COLORS


def probability_bars(face: FaceResult, title: str = "") -> go.Figure:
    """Horizontal bars of the 7 probabilities, the predicted emotion highlighted."""
    names = list(face.classes)
    values = [float(p) for p in face.probs]
    colors = [f"rgb{EMOTION_COLORS.get(n, (150, 150, 150))}" if n == face.label else "rgb(200,200,200)"
              for n in names]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colors,
                           text=[f"{v:.0%}" for v in values], textposition="outside",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    if title:
        fig.update_layout(title_text=title)
    fig.update_layout(height=260, margin=dict(l=10, r=30, t=30 if title else 10, b=10),
                      xaxis=dict(range=[0, 1.1], tickformat=".0%", title="probability"),
                      yaxis=dict(autorange="reversed"), showlegend=False)
    return fig
