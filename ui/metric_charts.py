"""Plotly charts for classification reports (confusion matrix, per-class bars, reliability diagram)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def confusion_figure(report: dict[str, Any], normalize: bool, title: str = "") -> go.Figure:
    """Rows = true class, columns = predicted, in the report's class order."""
    classes = report["classes"]
    counts = np.asarray(report["confusion"], dtype=float)
    if normalize:
        values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        text = [[f"{v:.0%}" for v in row] for row in values]
    else:
        values = counts
        text = [[f"{int(v)}" for v in row] for row in values]
    fig = go.Figure(go.Heatmap(
        z=values, x=classes, y=classes, text=text, texttemplate="%{text}", colorscale="Blues",
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>", showscale=False))
    fig.update_layout(title=title or None, height=430, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    return fig


def per_class_table(report: dict[str, Any]) -> pd.DataFrame:
    rows = [{"emotion": c, **{k: report["per_class"][c][k] for k in ("precision", "recall", "f1", "support")}}
            for c in report["classes"]]
    return pd.DataFrame(rows)


def per_class_figure(reports: dict[str, dict[str, Any]]) -> go.Figure:
    """F1 per emotion, one bar group per model."""
    rows = []
    for label, rep in reports.items():
        for c in rep["classes"]:
            rows.append({"model": label, "emotion": c, "F1": rep["per_class"][c]["f1"]})
    fig = px.bar(pd.DataFrame(rows), x="emotion", y="F1", color="model", barmode="group", range_y=[0, 1])
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=10, b=10), legend_title_text="")
    return fig


def reliability_figure(reports: dict[str, dict[str, Any]]) -> go.Figure:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"),
                               name="perfectly calibrated"))
    for label, rep in reports.items():
        rel = rep.get("reliability") or {}
        if not rel:
            continue
        fig.add_trace(go.Scatter(x=rel["confidence"], y=rel["accuracy"], mode="lines+markers",
                                 name=f"{label} (ECE {rep['ece']:.3f})",
                                 customdata=rel["count"], hovertemplate="confidence %{x:.2f}, accuracy %{y:.2f}, "
                                                                        "%{customdata} faces<extra></extra>"))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="confidence",
                      yaxis_title="accuracy", xaxis_range=[0, 1], yaxis_range=[0, 1])
    return fig
