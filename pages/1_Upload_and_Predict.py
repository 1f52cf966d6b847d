"""Upload and Predict: images in, annotated faces, probabilities and downloads out. Nothing is stored."""
from __future__ import annotations

import hashlib
import json

import streamlit as st

import core  # noqa: F401
from core import settings
from core.analysis import ImageAnalysis, analyze_bytes, results_table, table_to_csv
from core.render import encode_png, render
from ui.charts import probability_bars
from ui.guards import require_model, require_settings
from ui.pickers import pick_detector, pick_model
from ui.resources import get_pipeline

st.set_page_config(page_title="Upload and Predict · EmoLens", page_icon="📤", layout="wide")
require_settings()
st.title("Upload and Predict")
st.markdown(
    f"Upload one or more photos. Accepted: **JPEG, PNG, WebP, BMP, TIFF**, up to "
    f"**{settings.get().max_upload_bytes // 2**20} MB** and **{settings.get().max_megapixels:.0f} megapixels** each, "
    f"at most {settings.get().max_files} files at once. Images are analysed in memory and never saved."
)

with st.sidebar:
    st.header("Settings")
    detector, threshold = pick_detector()
    model = pick_model()
    show_landmarks = st.checkbox("Show detector keypoints", value=False)

uploads = st.file_uploader("Images", type=None, accept_multiple_files=True,
                           help="Drop files here or click to browse. The format is checked from the content.")
if not uploads:
    st.info("Waiting for images. Tip: group photos work too; every face is analysed.")
    st.stop()
if len(uploads) > settings.get().max_files:
    st.warning(f"{len(uploads)} files were selected; only the first {settings.get().max_files} are analysed.")
    uploads = uploads[:settings.get().max_files]

model = require_model(model)
pipeline = get_pipeline(detector, threshold, model)

# Results live in this browser session only, keyed by content and settings, so reruns are instant.
cache: dict[str, ImageAnalysis] = st.session_state.setdefault("predict_results", {})
analyses: list[ImageAnalysis] = []
progress = st.progress(0.0, text="Analysing…") if len(uploads) > 1 else None
for n, upload in enumerate(uploads, start=1):
    data = upload.getvalue()
    key = "|".join([hashlib.sha256(data).hexdigest(), upload.name, detector, f"{threshold:.2f}", model,
                    str(show_landmarks)])
    if key not in cache:
        cache[key] = analyze_bytes(pipeline, upload.name, data, landmarks=show_landmarks)
    analyses.append(cache[key])
    if progress is not None:
        progress.progress(n / len(uploads), text=f"Analysed {n} of {len(uploads)} images")
if progress is not None:
    progress.empty()
live = {k for k in cache if any(k.startswith(hashlib.sha256(u.getvalue()).hexdigest()) for u in uploads)}
for stale in set(cache) - live:  # forget images the user removed
    del cache[stale]

n_faces = sum(len(a.faces) for a in analyses)
n_bad = sum(not a.ok for a in analyses)
st.success(f"{len(analyses) - n_bad} image(s) analysed, {n_faces} face(s) found."
           + (f" {n_bad} file(s) could not be used." if n_bad else ""))

table = results_table(analyses)
col_csv, col_json = st.columns(2)
col_csv.download_button("Download results (CSV)", table_to_csv(table), "emolens_results.csv", "text/csv")
col_json.download_button("Download results (JSON)", json.dumps([a.to_json() for a in analyses], indent=2),
                         "emolens_results.json", "application/json")

for index, a in enumerate(analyses):
    st.divider()
    st.subheader(a.file)
    if not a.ok:
        st.error(a.error)
        continue
    for note in a.notes:
        st.caption(f"ℹ️ {note}")
    if not a.faces:
        st.warning("No face was found. Try a lower detection threshold or another detector; faces should be "
                   "at least about 30 pixels tall and not heavily turned away.")
        st.image(a.image, width="stretch")
        continue
    annotated = render(a.image, a.faces, show_landmarks=show_landmarks)
    left, right = st.columns([3, 2])
    left.image(annotated, caption=f"{len(a.faces)} face(s)", width="stretch")
    left.download_button("Download annotated image (PNG)", encode_png(annotated),
                         f"{a.file.rsplit('.', 1)[0]}_emolens.png", "image/png", key=f"png_{index}")
    with right:
        for i, face in enumerate(a.faces, start=1):
            st.markdown(f"**Face #{i}: {face.label}** — confidence {face.confidence:.0%} "
                        f"(detector score {face.score:.2f})")
            st.plotly_chart(probability_bars(face), width="stretch", key=f"chart_{index}_{i}")

with st.expander("All faces as a table"):
    st.dataframe(table, width="stretch", hide_index=True)
