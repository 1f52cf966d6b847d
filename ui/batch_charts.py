"""Plotly figures for the Batch Results page: emotion shares, per folder, per video over time, confidence."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.emotion.vocabulary import EMOTIONS
from core.render import EMOTION_COLORS

MARGIN = dict(l=10, r=10, t=50, b=10)


def _color(emotion: str) -> str:
    return f"rgb{EMOTION_COLORS.get(emotion, (150, 150, 150))}"


def share_chart(shares: pd.DataFrame, title: str = "Share of faces per emotion") -> go.Figure:
    """One bar per emotion (share of all faces), the count in the hover."""
    fig = go.Figure(go.Bar(x=shares["emotion"], y=shares["share"], customdata=shares["faces"],
                           marker_color=[_color(e) for e in shares["emotion"]],
                           text=[f"{v:.0%}" for v in shares["share"]], textposition="outside",
                           hovertemplate="%{x}: %{y:.1%} (%{customdata} faces)<extra></extra>"))
    fig.update_layout(title=title, height=320, margin=MARGIN, showlegend=False,
                      yaxis=dict(range=[0, min(1.0, float(shares["share"].max() or 0) + 0.15)], tickformat=".0%"))
    return fig


def group_share_chart(shares: pd.DataFrame, by: str, title: str) -> go.Figure:
    """100% stacked bars: for each group (folder), how its faces split over the emotions."""
    fig = go.Figure()
    for emotion in EMOTIONS:
        part = shares[shares["emotion"] == emotion]
        fig.add_trace(go.Bar(y=part[by], x=part["share"], name=emotion, orientation="h", customdata=part["faces"],
                             marker_color=_color(emotion),
                             hovertemplate=f"%{{y}} · {emotion}: %{{x:.1%}} (%{{customdata}} faces)<extra></extra>"))
    groups = shares[by].nunique()
    fig.update_layout(barmode="stack", title=title, height=140 + 28 * groups, margin=MARGIN,
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"),
                      legend=dict(orientation="h", y=-0.15))
    return fig


def timeline_chart(timeline: pd.DataFrame, title: str) -> go.Figure:
    """Smoothed share of each emotion over the video's time, the per-frame values as faint dots."""
    fig = go.Figure()
    for emotion in EMOTIONS:
        part = timeline[timeline["emotion"] == emotion]
        if part.empty or not (part["share"] > 0).any():
            continue
        fig.add_trace(go.Scatter(x=part["t_s"], y=part["smoothed"], mode="lines", name=emotion,
                                 line=dict(color=_color(emotion), width=2), legendgroup=emotion,
                                 hovertemplate=f"{emotion} at %{{x:.1f}} s: %{{y:.0%}}<extra></extra>"))
        fig.add_trace(go.Scatter(x=part["t_s"], y=part["share"], mode="markers", showlegend=False,
                                 legendgroup=emotion, opacity=0.3, marker=dict(color=_color(emotion), size=5),
                                 hoverinfo="skip"))
    fig.update_layout(title=title, height=360, margin=MARGIN, xaxis_title="time in the video (s)",
                      yaxis=dict(range=[0, 1.05], tickformat=".0%", title="share of faces"))
    return fig


def confidence_chart(faces: pd.DataFrame) -> go.Figure:
    """How sure the model was, per predicted emotion (box: quartiles; whiskers: the spread)."""
    fig = go.Figure()
    for emotion in EMOTIONS:
        values = faces.loc[faces["emotion"] == emotion, "confidence"]
        if len(values):
            fig.add_trace(go.Box(y=values, name=f"{emotion} ({len(values)})", marker_color=_color(emotion),
                                 boxpoints=False))
    fig.update_layout(title="Confidence of the predicted emotion", height=340, margin=MARGIN, showlegend=False,
                      yaxis=dict(range=[0, 1.02], tickformat=".0%", title="confidence"))
    return fig
