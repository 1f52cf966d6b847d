"""Model Comparison: confusion matrices, per-class metrics, calibration, architectures and detectors.

Every number here is read from a JSON report in weights/reports/ written by an evaluation CLI.
"""
from __future__ import annotations

import json

import pandas as pd
import plotly.express as px
import streamlit as st

import core  # noqa: F401
from core import settings
from core.datasets.evaluate import evaluate_labelled
from core.datasets.labelled import LabelledSetError, read_labelled
from core.reports import classifier_reports
from ui.metric_charts import confusion_figure, per_class_figure, per_class_table, reliability_figure
from ui.guards import report_or_hint, require_model, require_settings
from ui.pickers import pick_model
from ui.resources import get_classifier

st.set_page_config(page_title="Model Comparison · EmoLens", page_icon="📊", layout="wide")
require_settings()
st.title("Model Comparison")
st.caption("Every figure on this page comes from a report in `weights/reports/`; each report names the "
           "command that produced it, so you can re-run it.")

reports = classifier_reports()
if not reports:
    st.warning("No classifier report found. Run `python -m training.evaluate_classifier --split PrivateTest "
               "--json weights/reports/classifier_<model>_PrivateTest.json`.")
else:
    labels = list(reports)
    chosen = st.multiselect("Models to compare (one or two)", labels, default=labels[:1], max_selections=2)
    if chosen:
        selected = {label: reports[label] for label in chosen}
        summary = pd.DataFrame([{
            "model": label, "faces": r["n"], "accuracy": r["accuracy"], "macro-F1": r["macro_f1"],
            "ECE": r["ece"], "ms per face (CPU, batch 1)": r.get("ms_per_face")} for label, r in selected.items()])
        st.dataframe(summary.style.format({"accuracy": "{:.1%}", "macro-F1": "{:.3f}", "ECE": "{:.3f}",
                                           "ms per face (CPU, batch 1)": "{:.2f}"}),
                     hide_index=True, width="stretch")
        normalize = st.toggle("Row-normalised confusion matrix (recall per true class)", value=True)
        cols = st.columns(len(selected))
        for col, (label, rep) in zip(cols, selected.items()):
            col.plotly_chart(confusion_figure(rep, normalize, label), width="stretch")
            col.dataframe(per_class_table(rep).style.format({"precision": "{:.3f}", "recall": "{:.3f}",
                                                             "f1": "{:.3f}"}),
                          hide_index=True, width="stretch")
        st.subheader("F1 per emotion")
        st.plotly_chart(per_class_figure(selected), width="stretch")
        st.subheader("Reliability diagram")
        st.caption("A calibrated model's 70%-confident answers are right 70% of the time (the diagonal). "
                   "ECE is the average gap, weighted by how many faces fall in each bin.")
        st.plotly_chart(reliability_figure(selected), width="stretch")
        with st.expander("Where these numbers come from"):
            for label, rep in selected.items():
                st.markdown(f"**{label}**: `{rep.get('command', 'unknown command')}` at commit "
                            f"`{str(rep.get('commit', 'unknown'))[:10]}`")

st.header("Architectures")
experiments = report_or_hint("experiments", "architecture experiments", "python -m training.run_experiments")
if experiments is not None:
    table = pd.DataFrame(experiments["runs"])
    st.caption(experiments.get("recipe_note", ""))
    st.dataframe(table, hide_index=True, width="stretch")
    fig = px.scatter(table, x="ms_per_face", y="public_test_accuracy", text="architecture",
                     size="params_m", labels={"ms_per_face": "ms per face (CPU, batch 1)",
                                              "public_test_accuracy": "PublicTest accuracy"})
    fig.update_traces(textposition="top center")
    st.plotly_chart(fig, width="stretch")

st.header("Face detectors")
detection = report_or_hint("detection", "detector", "python -m training.evaluate_detector")
if detection is not None:
    det = pd.DataFrame([{"detector": name, **{k: v for k, v in m.items() if not isinstance(v, (list, dict))}}
                        for name, m in detection["detectors"].items()])
    st.dataframe(det, hide_index=True, width="stretch")
    curves = [(name, m["pr_curve"]) for name, m in detection["detectors"].items() if m.get("pr_curve")]
    if curves:
        pr = pd.concat([pd.DataFrame({"recall": c["recall"], "precision": c["precision"], "detector": name})
                        for name, c in curves])
        st.plotly_chart(px.line(pr, x="recall", y="precision", color="detector", range_x=[0, 1], range_y=[0, 1]),
                        width="stretch")

st.header("Evaluate on your own data")
st.markdown(
    "Upload a **zip** of labelled faces, in either layout:\n"
    "- class folders: `happy/img1.jpg`, `sad/img2.png`, … (each image is one face crop), or\n"
    "- images plus a `labels.csv` with columns `file, emotion` and optionally the face box `x1, y1, x2, y2` "
    "(the Annotate page exports exactly this).\n\n"
    "The faces are analysed in memory; nothing is stored. Results stay in this tab until you close it.\n\n"
    f"One evaluation takes at most {settings.get().own_eval_max_faces:,} labelled faces and "
    f"{settings.get().own_eval_max_megapixels:,.0f} megapixels of "
    "images in all; split a larger set into several zips."
)
own_model = require_model(pick_model(label="Model to evaluate", key="own_model"), "your data cannot be evaluated")
archive = st.file_uploader("Labelled zip", type=None, key="own_zip")
if archive is not None:
    key = (archive.file_id, own_model)
    if st.session_state.get("own_eval_key") != key:
        try:
            labelled = read_labelled(archive.getvalue())
            bar = st.progress(0.0, text="Evaluating…")
            result = evaluate_labelled(get_classifier(own_model), labelled,
                                       progress=lambda f: bar.progress(f, text=f"Evaluating… {f:.0%}"))
            bar.empty()
            st.session_state["own_eval"], st.session_state["own_eval_key"] = result, key
        except (LabelledSetError, ValueError) as exc:
            st.session_state.pop("own_eval", None)
            st.session_state["own_eval_key"] = None
            st.error(getattr(exc, "message", str(exc)))
    result = st.session_state.get("own_eval") if st.session_state.get("own_eval_key") == key else None
    if result is not None:
        rep = result.report
        c1, c2, c3 = st.columns(3)
        c1.metric("Faces", rep["n"])
        c2.metric("Accuracy", f"{rep['accuracy']:.1%}")
        c3.metric("Macro-F1", f"{rep['macro_f1']:.3f}")
        for note in result.skipped[:10]:
            st.caption(f"Skipped: {note}")
        left, right = st.columns(2)
        left.plotly_chart(confusion_figure(rep, True, "Your data (row-normalised)"), width="stretch")
        right.dataframe(per_class_table(rep), hide_index=True, width="stretch")
        st.download_button("Download these metrics (JSON)", json.dumps(rep, indent=2),
                           "emolens_evaluation.json", "application/json")
        if result.misclassified:
            st.subheader("Misclassified faces (most confident mistakes first)")
            st.caption(f"The {len(result.misclassified)} most confident of {result.mistakes} mistakes.")
            cols = st.columns(6)
            for i, m in enumerate(result.misclassified):
                cols[i % 6].image(m.crop, caption=f"true {m.true} · said {m.predicted} {m.confidence:.0%}",
                                  width="stretch")
