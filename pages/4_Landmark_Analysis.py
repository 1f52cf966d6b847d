"""Landmark Analysis: MediaPipe Face Mesh and dlib's 68 points on your photo, their accuracy on 300-W, and
what landmark error does to emotion accuracy. Benchmark numbers come from weights/reports/landmarks.json."""
from __future__ import annotations

import hashlib

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

import core  # noqa: F401
from core import settings
from core.landmarks.metrics import FAILURE_THRESHOLD, disagreement
from core.landmarks import available_landmarkers, landmarker_label, to_68
from core.landmarks.draw import COLORS, draw_landmarks
from core.landmarks.report import ced_frame, curve_frame, load_landmark_report, nme_table, report_path
from core.validation import ImageRejected, validate_image_bytes
from ui.guards import require_settings
from ui.resources import get_detector, get_landmarker

st.set_page_config(page_title="Landmark Analysis · EmoLens", page_icon="📍", layout="wide")
require_settings()
st.title("Landmark Analysis")
st.markdown("Facial landmarks are points on the eyes, brows, nose, mouth and jaw. EmoLens can use them to "
            "**align** a face (eyes level, fixed eye distance) before reading its emotion. Compare two "
            "landmarkers on your own photo, see how accurate each is, and how much landmark error matters.")

LABELS = {name: landmarker_label(name) for name in available_landmarkers()}


@st.cache_data(max_entries=8, show_spinner="Finding faces and landmarks…")
def analyse(digest: str, data: bytes) -> dict:
    """Faces and both landmark sets for one upload (kept in memory only, keyed by content)."""
    try:
        image = validate_image_bytes(data).image
    except ImageRejected as exc:
        return {"error": exc.message}
    boxes = [d.box for d in get_detector(settings.get().detector).detect(image)]
    points = {name: [get_landmarker(name).landmarks(image, b) for b in boxes] for name in LABELS}
    return {"image": image, "boxes": boxes, "points": points}


report = load_landmark_report()
tab_photo, tab_acc, tab_emotion = st.tabs(["Your photo", "Landmark accuracy", "Emotion vs landmark error"])

with tab_photo:
    upload = st.file_uploader("A photo with one or more faces", key="landmark_upload",
                              help="Analysed in memory and never saved.")
    cols = st.columns(3)
    show_mesh = cols[0].toggle("MediaPipe: all 478 points", value=False)
    show_mp68 = cols[1].toggle("MediaPipe mapped to 68 points", value=True)
    show_dlib = cols[2].toggle("dlib 68 points", value=True)
    if upload is None:
        st.info("Upload a photo to see both landmark sets drawn on every face.")
    else:
        data = upload.getvalue()
        result = analyse(hashlib.sha256(data).hexdigest(), data)
        if "error" in result:
            st.error(result["error"])
        elif not result["boxes"]:
            st.warning("No face was found in this photo. Faces should be at least about 30 pixels tall and "
                       "roughly frontal.")
            st.image(result["image"], width="stretch")
        else:
            mesh, dlib = result["points"]["mediapipe_mesh"], result["points"]["dlib68"]
            sets = []
            for m, d in zip(mesh, dlib):
                if m is not None and show_mesh:
                    sets.append((m, COLORS["mediapipe_mesh"]))
                if m is not None and show_mp68:
                    sets.append((to_68(m), COLORS["mediapipe_mesh_68"]))
                if d is not None and show_dlib:
                    sets.append((d, COLORS["dlib68"]))
            st.image(draw_landmarks(result["image"], sets, result["boxes"]), width="stretch",
                     caption="Dark blue: MediaPipe → 68 · light blue: MediaPipe 478 · orange: dlib 68")
            rows = []
            for i, (m, d) in enumerate(zip(mesh, dlib), start=1):
                row = {"face": f"#{i}"}
                if m is None or d is None:
                    row["note"] = "MediaPipe found no mesh on this face" if m is None else "dlib gave no points"
                else:
                    row.update({k: round(v, 3) for k, v in disagreement(to_68(m), d).items()})
                rows.append(row)
            st.markdown("**Disagreement between the two landmarkers** (mean point distance divided by the "
                        "outer-eye-corner distance, per region; 0.05 is about 1/20 of the eye span):")
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            st.caption("There is no ground truth for your photo, so this is disagreement, not error. The jaw "
                       "always disagrees most: MediaPipe's mesh has no exact 68-point jaw, so its mapping is "
                       "approximate there.")

with tab_acc:
    if not report or "methods" not in report:
        st.info("No landmark accuracy report yet. Produce it with `python -m training.evaluate_landmarks "
                f"--data ../shared/data/landmarks --json {report_path()}`.")
    else:
        subsets = {"all faces": None} | {s: s for s in report["by_subset"]}
        fair = report.get("fair_subset")
        choice = st.radio("Face set", list(subsets), horizontal=True,
                          index=list(subsets).index(fair) if fair in subsets else 0)
        methods = report["methods"] if subsets[choice] is None else report["by_subset"][choice]["methods"]
        st.caption(report.get("fair_subset_note", ""))
        table = nme_table(methods, LABELS)
        st.dataframe(table.style.format({c: "{:.4f}" for c in table.columns if c.startswith(("NME", "eye", "AUC"))}
                                        | {"failure rate": "{:.1%}", "ms per face": "{:.1f}"}),
                     hide_index=True, width="stretch")
        st.caption(f"NME: mean point error ÷ outer-eye-corner distance; failure: NME > {FAILURE_THRESHOLD} or no "
                   f"points. {report.get('mapping_note', '')} Boxes: {report.get('boxes')}; "
                   f"{len(report.get('detector_missed', []))} faces the detector missed are left out.")
        ced = ced_frame(report, subsets[choice]).replace({"method": LABELS})
        fig = px.line(ced, x="NME threshold", y="fraction of faces", color="method",
                      title="Cumulative error distribution (higher and further left is better)")
        fig.add_vline(x=FAILURE_THRESHOLD, line_dash="dot", annotation_text="failure threshold")
        fig.update_layout(height=360, yaxis_tickformat=".0%")
        st.plotly_chart(fig, key="ced")
        st.caption(f"Command: `{report.get('command')}` · commit {str(report.get('commit'))[:10]} · "
                   f"{report.get('created')}")

with tab_emotion:
    impact = (report or {}).get("emotion_impact")
    if not impact:
        st.info("No emotion-impact study yet. Produce it with `python -m training.landmark_emotion_study "
                f"--json {report_path()}`.")
    else:
        curves = curve_frame(impact)
        fig = go.Figure()
        palette = px.colors.qualitative.Safe
        for k, (name, s) in enumerate(impact["sets"].items()):
            color = palette[k % len(palette)]
            c = curves[curves["set"] == name]
            fig.add_trace(go.Scatter(x=c["nme"], y=c["accuracy"], mode="lines+markers", name=f"{name}",
                                     line=dict(color=color),
                                     hovertemplate="landmark NME %{x:.3f}<br>accuracy %{y:.1%}<extra></extra>"))
            fig.add_hline(y=s["conditions"]["none"]["accuracy"], line_dash="dot", line_color=color,
                          annotation_text=f"{name}: no alignment", annotation_position="bottom right")
            for m, v in s.get("vs_reference", {}).items():
                fig.add_trace(go.Scatter(x=[v["nme"]], y=[s["conditions"][m]["accuracy"]], mode="markers",
                                         marker=dict(symbol="diamond", size=11, color=color),
                                         name=f"{name}: {LABELS.get(m, m)}", showlegend=False,
                                         hovertemplate=f"{LABELS.get(m, m)} alignment<extra></extra>"))
        fig.update_layout(title="Emotion accuracy vs error in the landmarks used for alignment", height=420,
                          xaxis_title=f"landmark NME (added error, measured against {LABELS[impact['reference']]})",
                          yaxis_title="emotion accuracy", yaxis_tickformat=".0%")
        st.plotly_chart(fig, key="impact")
        st.caption("Lines: alignment from MediaPipe's points with added error (first point: none added). "
                   "Diamonds: alignment from dlib, placed at its disagreement with MediaPipe. "
                   "Dotted: the same faces without alignment.")
        for sentence in impact.get("summary", []):
            st.markdown(f"- {sentence}")
        rows = [{"set": name, "condition": LABELS.get(c, "no alignment" if c == "none" else c), **v}
                for name, s in impact["sets"].items() for c, v in s["conditions"].items()]
        with st.expander("All conditions as a table"):
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption(f"Model: {impact['model']} (weights sha256 {impact['weights_sha256'][:12]}…) · command: "
                   f"`{impact['command']}` · commit {str(impact.get('commit'))[:10]} · {impact.get('created')}")
