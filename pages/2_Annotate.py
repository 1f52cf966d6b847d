"""Annotate: the model pre-labels every face, a person sets the true emotion, the set is exported.

All work lives in this browser session (st.session_state); nothing is written to disk.
"""
from __future__ import annotations

import hashlib

import streamlit as st

import core  # noqa: F401
from core import settings
from core.datasets.annotation import AddResult, AnnotationError, AnnotationSession, json_bytes, label_studio_config
from core.archive import is_zip
from core.datasets.labelled import NOT_A_FACE, LabelledSetError, read_labelled
from core.emotion.finetune import MIN_PER_CLASS, FinetuneConfig, FinetuneError, finetune, summary_table
from ui.guards import require_model, require_settings
from ui.pickers import pick_detector, pick_model
from ui.resources import get_pipeline

st.set_page_config(page_title="Annotate · EmoLens", page_icon="🏷️", layout="wide")
require_settings()
st.title("Annotate")
st.markdown("Upload photos: every face the detector finds gets the model's emotion as a pre-label. Set the "
            "true emotion (least confident faces first), mark false detections as *not a face*, add faces "
            "it missed, then export the labelled set.")
st.info("Your work lives only in this browser tab: nothing is written to disk, and closing or reloading the "
        "tab loses it. Download the **labelled zip** to keep it; upload that zip here again to carry on.")

state = st.session_state
session: AnnotationSession = state.setdefault("annotation", AnnotationSession())
outcomes: dict[str, AddResult] = state.setdefault("annotate_uploads", {})

with st.sidebar:
    detector, threshold = pick_detector()
    model = pick_model()
    reviewed, total = session.progress()
    st.progress(reviewed / total if total else 0.0, text=f"Reviewed {reviewed} of {total} faces")
    if session.unsaved():
        st.warning("Changes since your last labelled-zip download.")
model = require_model(model, "nothing can be pre-labelled")
pipeline = get_pipeline(detector, threshold, model)

uploads = st.file_uploader("Images, or a labelled zip exported here to carry on", accept_multiple_files=True,
                           help="JPEG, PNG, WebP, BMP or TIFF photos; or the zip from 'Download labelled zip'.")
for upload in (uploads or [])[:settings.get().max_files]:
    data = upload.getvalue()
    key = hashlib.sha256(upload.name.encode() + b"\0" + data).hexdigest()
    if key not in outcomes:  # each upload is added once; later reruns only show its outcome
        if is_zip(data):
            try:
                outcomes[key] = session.add_labelled(read_labelled(data), pipeline.classifier)
            except LabelledSetError as exc:  # the session is untouched
                outcomes[key] = AddResult(file=upload.name, error=exc.message)
        else:
            outcomes[key] = session.add_image(upload.name, data, pipeline)
    result = outcomes[key]
    if result.error:
        st.error(f"**{upload.name}** was not added. {result.error}")
    elif result.skipped:
        st.caption(f"{upload.name}: {result.skipped}.")
    for note in result.notes:
        st.caption(f"ℹ️ {upload.name}: {note}")

reviewed, total = session.progress()
st.progress(reviewed / total if total else 0.0, text=f"Reviewed {reviewed} of {total} faces "
            f"in {len(session.images)} image(s)")
if session.unsaved():  # the browser asks before the tab is closed or reloaded
    st.html("<script>window.parent.onbeforeunload = (e) => { e.preventDefault(); e.returnValue = ''; };</script>",
            unsafe_allow_javascript=True)
if not session.images:
    st.stop()


def _label(face_id: int) -> None:
    session.set_emotion(face_id, state[f"emotion_{face_id}"])


def _extra(face_id: int, column: str) -> None:
    session.set_extra(face_id, column, state[f"extra_{column}_{face_id}"])


st.header("Review")
only_open = st.toggle("Only unreviewed faces", value=True)
queue = session.queue(unreviewed_only=only_open)
pages = max(1, -(-len(queue) // settings.get().annotate_page_size))
page = st.number_input("Page", 1, pages, 1) if pages > 1 else 1
options = [*session.classes, NOT_A_FACE]
if not queue:
    st.success("Every face is reviewed." if total else "No face found yet; add missed faces below.")
for face in queue[(page - 1) * settings.get().annotate_page_size:page * settings.get().annotate_page_size]:
    thumb, about, controls = st.columns([1, 2, 3])
    if face.thumb:
        thumb.image(face.thumb, width=96)
    about.markdown(f"**Face {face.id}** · {face.file}" + (" · added by hand" if face.added else ""))
    conf = f" ({face.confidence:.0%})" if face.confidence is not None else ""
    about.caption(f"Model: {face.predicted or '—'}{conf} · {face.status}")
    current = face.current if face.current in options else options[0]
    controls.selectbox("True emotion", options, index=options.index(current), key=f"emotion_{face.id}",
                       format_func=lambda c: "✗ not a face" if c == NOT_A_FACE else c,
                       on_change=_label, args=(face.id,))
    controls.button("Confirm", key=f"confirm_{face.id}", on_click=session.confirm, args=(face.id,),
                    disabled=face.reviewed, help="Accept the label shown (marks the face reviewed).")
    for column in session.extra_columns:
        controls.text_input(column, face.extra.get(column, ""), key=f"extra_{column}_{face.id}",
                            on_change=_extra, args=(face.id, column))

with st.expander("Add a face the detector missed, or a column such as a group attribute"):
    file = st.selectbox("Image", list(session.images))
    width, height = session.sizes[file]
    st.image(session.draw(file), caption=f"{width}×{height} px; boxes show face ids", width="stretch")
    with st.form("add_face", clear_on_submit=True):
        st.caption("Box corners in pixels: x grows to the right, y downwards, (0, 0) is the top-left corner.")
        cols = st.columns(4)
        box = [c.number_input(n, 0, int(lim), 0) for c, n, lim in zip(cols, ("x1", "y1", "x2", "y2"),
                                                                          (width, height, width, height))]
        if st.form_submit_button("Add face"):
            try:
                session.add_face(file, box, pipeline.classifier)
                st.rerun()
            except AnnotationError as exc:
                st.error(exc.message)
    with st.form("add_column", clear_on_submit=True):
        name, default = st.columns(2)
        column, value = name.text_input("New column"), default.text_input("Value for every face")
        if st.form_submit_button("Add column"):
            try:
                session.add_column(column, value)
                st.rerun()
            except AnnotationError as exc:
                st.error(exc.message)

st.header("Export")
st.caption("The labelled zip holds your images and labels.csv (file, x1, y1, x2, y2, emotion, reviewed, "
           "predicted, confidence, and your columns); upload it here again to carry on.")
left, mid, right, far = st.columns(4)
left.download_button("Download labelled zip", session.export_labels_zip(), "emolens_labelled.zip",
                     "application/zip", on_click=session.mark_exported, type="primary")
mid.download_button("Face crops by class (zip)", lambda: session.export_crops_zip(pipeline.classifier),
                    "emolens_crops.zip", "application/zip")
right.download_button("COCO JSON", lambda: json_bytes(session.export_coco()), "emolens_coco.json",
                      "application/json")
prefix = far.text_input("Image URL prefix for Label Studio", "/data/local-files/?d=",
                        help="Label Studio loads images from URLs: where you will serve these files.")
far.download_button("Label Studio JSON", lambda: json_bytes(session.export_label_studio(prefix, model)),
                    "emolens_label_studio.json", "application/json")
with st.expander("Label Studio labelling config for these tasks"):
    st.code(label_studio_config(session.classes), language="xml")

st.header("Fine-tune on this set")
counts = {c: sum(f.emotion == c for f in session.labelled_faces()) for c in session.classes}
st.caption("Keeps the model's features and retrains its final layer on your reviewed faces (the epoch is picked "
           "on part of the training faces), then compares it with the current model on a held-out part (split "
           "by image, or by a `subject` column). Runs here, in "
           "memory; the result is offered as a download, never written into the weights folder. Reviewed "
           "faces per class: " + ", ".join(f"{c} {n}" for c, n in counts.items() if n) + ".")
chosen = st.multiselect("Classes", [c for c, n in counts.items() if n],
                        [c for c, n in counts.items() if n >= MIN_PER_CLASS])
epochs = st.slider("Epochs", 5, 100, FinetuneConfig.epochs, 5)
if st.button("Fine-tune on this set"):
    bar = st.progress(0.0, text="Starting…")
    try:
        state["finetune"] = finetune(session.to_labelled(), FinetuneConfig(classes=chosen, epochs=epochs),
                                     pipeline.classifier, lambda f, t: bar.progress(f, text=t), "Annotate session",
                                     command="Annotate page fine-tune", commit=None)
    except FinetuneError as exc:
        st.error(exc.message)
    bar.empty()
result = state.get("finetune")
if result is not None:
    st.dataframe(summary_table(result.report), hide_index=True, width="stretch")
    st.download_button("Download fine-tuned model (weights + card, zip)", result.to_zip(),
                       f"{result.card['name']}.zip", "application/zip")
    st.caption("Unzip into the folder set by EMOLENS_WEIGHTS_DIR and choose it as the emotion model.")
