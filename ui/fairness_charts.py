"""Plotly figures for the Fairness Audit page: group scores and gaps, each with its 95% interval."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from core.fairness.metrics import FairnessAudit, metric_label

OK_COLOR = "#0072B2"      # Okabe-Ito blue: readable for colour-blind viewers
FEW_COLOR = "#BBBBBB"     # groups too small to compare
FLAG_COLOR = "#D55E00"    # gaps whose interval excludes zero


def attribute_title(audit: FairnessAudit, key: str) -> str:
    a = audit.attributes[key]
    return f"{a.attribute} — {a.scope}" if a.scope else a.attribute


def group_chart(audit: FairnessAudit, key: str, metric: str) -> go.Figure:
    """One bar per group with its interval; too-small groups grey and labelled; the scope's overall value dashed."""
    a = audit.attributes[key]
    names, values, lows, highs, colors = [], [], [], [], []
    for g in sorted(a.groups.values(), key=lambda g: g.group):  # natural order: 0-19, 20-29, ...
        value, ci = g.value(metric)
        if value is None:
            continue
        few = g.denominator(metric) < audit.config.min_group_size
        people = f" · {g.n_subjects} people" if g.n_subjects is not None else ""
        names.append(f"{g.group}<br>n={g.denominator(metric)}{people}" + (" · too few" if few else ""))
        values.append(value)
        lows.append(value - ci[0] if ci else 0)
        highs.append(ci[1] - value if ci else 0)
        colors.append(FEW_COLOR if few else OK_COLOR)
    fig = go.Figure(go.Bar(
        x=names, y=values, marker_color=colors,
        error_y=dict(type="data", symmetric=False, array=highs, arrayminus=lows, color="#333"),
        hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    overall = audit.overall.get(a.scope or "all")
    if overall is not None and overall.value(metric)[0] is not None:
        fig.add_hline(y=overall.value(metric)[0], line_dash="dash", line_color="#666",
                      annotation_text=f"all of {a.scope or 'the set'}", annotation_position="top left")
    fig.update_layout(title=f"{metric_label(metric)} by {attribute_title(audit, key)}", height=340,
                      margin=dict(l=10, r=10, t=50, b=10), showlegend=False,
                      yaxis=dict(range=[0, 1.15], tickformat=".0%", title=metric_label(metric)))
    return fig


def gap_chart(audit: FairnessAudit, keys: Sequence[str], metric: str) -> go.Figure:
    """Each attribute's gap (best − worst group) with its interval; a flag when the interval excludes zero."""
    labels, gaps, lows, highs, colors, texts = [], [], [], [], [], []
    for key in keys:
        gap = audit.attributes[key].gaps.get(metric)
        if gap is None or gap.gap is None or gap.ci is None:
            continue
        labels.append(attribute_title(audit, key))
        gaps.append(gap.gap)
        lows.append(gap.gap - gap.ci[0])
        highs.append(gap.ci[1] - gap.gap)
        colors.append(FLAG_COLOR if gap.flagged else OK_COLOR)
        texts.append(f"{gap.high} vs {gap.low}" + (" · flagged" if gap.flagged else ""))
    fig = go.Figure(go.Scatter(
        x=gaps, y=labels, mode="markers+text", marker=dict(size=12, color=colors), text=texts,
        textposition="top center",
        error_x=dict(type="data", symmetric=False, array=highs, arrayminus=lows, color="#333"),
        hovertemplate="%{y}: gap %{x:.1%} (%{text})<extra></extra>"))
    fig.add_vline(x=0, line_color="#666")
    fig.update_layout(title=f"Gap in {metric_label(metric)} (highest − lowest group), 95% interval",
                      height=120 + 60 * max(1, len(labels)), margin=dict(l=10, r=10, t=50, b=10),
                      xaxis=dict(tickformat=".0%", zeroline=False), showlegend=False)
    return fig
