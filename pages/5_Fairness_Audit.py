"""Fairness Audit: does the model read some groups of people worse than others? With honest uncertainty."""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import streamlit as st

import core  # noqa: F401
from core import settings
from core.detection import default_threshold
from core.fairness.metrics import FairnessAudit, metric_label
from core.datasets.labelled import LabelledSetError, read_uploads
from core.fairness.audit import FACE_MODE_HELP, FACE_MODES, attribute_candidates, audit_dataset, audit_faces
from ui.fairness_charts import attribute_title, gap_chart, group_chart
from ui.guards import require_model, require_settings
from ui.resources import default_model, get_pipeline

st.set_page_config(page_title="Fairness Audit · EmoLens", page_icon="⚖️", layout="wide")
require_settings()
REPORT = settings.get().reports_dir / "fairness.json"
COMMAND = "python -m training.audit_fairness --data ../shared/data/fairness --json weights/reports/fairness.json"
st.title("Fairness audit")
st.markdown(
    "Does the emotion model read some groups of people less well than others? For each group we show "
    "accuracy, macro-F1, recall of each emotion and how often each emotion is predicted, with a **95% "
    "interval** from resampling *people* (not photos). A gap is **flagged** only when its interval excludes "
    f"zero; groups with fewer than **{settings.get().min_group_size}** faces are marked *too few* and not compared."
)


def show_audit(audit: FairnessAudit, key: str) -> None:
    """Attribute and metric pickers, charts with intervals, and the tables behind them."""
    keys = list(audit.attributes)
    if not keys:
        st.warning("Nothing could be compared: every attribute had fewer than two known groups.")
        return
    left, right = st.columns(2)
    chosen = left.multiselect("Attributes", keys, default=keys, key=f"{key}_attributes",
                              format_func=lambda k: attribute_title(audit, k))
    if not chosen:
        st.info("Choose at least one attribute.")
        return
    metric = right.selectbox("Metric", audit.metrics(chosen), key=f"{key}_metric", format_func=metric_label,
                             help="Recall of an emotion across groups is the equal-opportunity comparison.")
    columns = st.columns(min(2, len(chosen)))
    for i, k in enumerate(chosen):
        columns[i % len(columns)].plotly_chart(group_chart(audit, k, metric), width="stretch",
                                               key=f"{key}_chart_{k}_{metric}")
    st.plotly_chart(gap_chart(audit, chosen, metric), width="stretch", key=f"{key}_gaps_{metric}")
    flagged = [(k, g) for k, g in audit.flagged() if k in chosen]
    if flagged:
        st.warning("Gaps whose interval excludes zero: " + "; ".join(
            f"**{attribute_title(audit, k)}**, {metric_label(g.metric)}: {g.high} {100 * g.gap:+.1f} points over {g.low}"
            for k, g in flagged))
    else:
        st.success("No gap among the chosen attributes has an interval that excludes zero.")
    st.markdown("**Groups**")
    st.dataframe(audit.groups_table(chosen, metric), width="stretch", hide_index=True)
    st.markdown("**Gaps** (every metric)")
    st.dataframe(audit.gaps_table(chosen), width="stretch", hide_index=True)
    for note in audit.skipped:
        st.caption(f"Not compared — {note}")


def audit_own_data() -> None:
    """The upload form: check the set, run it through the serving pipeline with a progress bar, show it."""
    st.markdown(
        "Upload **a zip** with your images and one CSV, or **the images plus a CSV**. The CSV needs a `file` "
        "and an `emotion` column (one of angry, disgust, fear, happy, sad, surprise, neutral); optional: a face "
        "box `x1, y1, x2, y2` in pixels (a blank box: the image is the face crop), a `subject` (who is in "
        "the photo, so intervals resample people), a `source` (groups are then compared within each source), "
        "and any attribute columns to compare (e.g. `gender`, `age_group`, `lighting`). Images stay in memory "
        "and are never saved.")
    files = st.file_uploader("Images and labels", accept_multiple_files=True, key="fairness_upload",
                             help="A .zip, or image files plus one .csv")
    if not files:
        return
    try:
        dataset = read_uploads([(f.name, f.getvalue()) for f in files], strict=False)
        ready = len(audit_faces(dataset))
    except LabelledSetError as exc:
        st.error(exc.message)
        return
    skipped = dataset.problems
    st.success(f"{ready} labelled image(s) ready" + (f"; {len(skipped)} row(s) skipped." if skipped else ".")
               + "".join(f" {n} row(s) {why} left out." for why, n in dataset.left_out().items()))
    if skipped:
        with st.expander("Skipped rows", expanded=True):
            st.markdown("\n".join(f"- {p}" for p in skipped))
    candidates = attribute_candidates(dataset)
    if not candidates:
        st.warning(f"No attribute column with 2 to {settings.get().fairness_max_groups} groups was found, so there "
                   "is nothing to compare. Add a column such as `gender` or `age_group`.")
        return
    attributes = st.multiselect("Attributes to audit", candidates, default=candidates)
    face_mode = st.selectbox("Faces", FACE_MODES, format_func=lambda m: f"{m}: {FACE_MODE_HELP[m]}")
    model = require_model(default_model())
    run_key = "|".join([hashlib.sha256(b"".join(f.getvalue() for f in files)).hexdigest(), face_mode, *attributes])
    if attributes and st.button("Run the audit", type="primary"):
        detector = settings.get().detector
        bar = st.progress(0.0, text="Analysing…")
        meta = {"report": "fairness_audit", "schema": 1, "data": {"path": "uploaded (not stored)"},
                "model": {"name": model}, "detector": {"name": detector},
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        try:
            run = audit_dataset(get_pipeline(detector, default_threshold(detector), model), dataset, attributes,
                                face_mode=face_mode, meta=meta,
                                progress=lambda i, n: bar.progress(i / n, text=f"Analysed {i} of {n} images"))
        except LabelledSetError as exc:
            st.error(exc.message)
            return
        bar.empty()
        st.session_state["fairness_run"] = (run_key, run)
    saved = st.session_state.get("fairness_run")
    if not saved or saved[0] != run_key:
        return
    run = saved[1]
    failed = run.problems[len(skipped):]
    if failed:
        with st.expander(f"{len(failed)} image(s) could not be analysed"):
            st.markdown("\n".join(f"- {p}" for p in failed))
    left, right = st.columns(2)
    left.download_button("Download the report (JSON)", json.dumps(run.audit.to_dict(), indent=2),
                         "emolens_fairness_report.json", "application/json")
    right.download_button("Download per-image predictions (CSV)", run.predictions_csv(),
                          "emolens_fairness_predictions.csv", "text/csv")
    show_audit(run.audit, "own")


built_in, own, about = st.tabs(["Built-in audit", "Audit your own data", "What the numbers mean"])

with built_in:
    try:
        report = FairnessAudit.from_dict(json.loads(REPORT.read_text()))
    except FileNotFoundError:
        st.info(f"No fairness report yet. Create it (needs the research data) with:\n\n`{COMMAND}`")
    except (ValueError, KeyError, TypeError) as exc:
        st.error(f"The fairness report {REPORT.name} could not be read ({exc}). Regenerate it with `{COMMAND}`.")
    else:
        meta = report.meta
        data, paths = meta.get("data", {}), meta.get("face_paths", {})
        st.markdown(
            "Faces from two public sets (see `../shared/data/fairness/README.md`): the **London set** (posed "
            "neutral and smiling studio portraits; self-reported gender, ethnicity and age) and an **IMFDB "
            "subset** (face crops of Indian film actors, 7 emotions, gender from public identity).\n\n"
            "**Groups are compared within a source, never across.** The sources differ in everything else at "
            "once (studio portraits vs small, noisy film crops; posed vs acted; two emotions vs seven), so a "
            "difference between them would mostly measure photo conditions, not people.")
        st.markdown("\n".join(
            f"- **{scope}**: {g.n} faces of {g.n_subjects or '?'} people, accuracy {g.accuracy:.1%}"
            + (f" (95% interval {g.accuracy_ci[0]:.1%}–{g.accuracy_ci[1]:.1%})" if g.accuracy_ci else "")
            + "; faces found by " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in paths.get(scope, {}).items())
            for scope, g in report.overall.items()))
        st.caption(
            f"Model `{meta.get('model', {}).get('name')}` · detector `{meta.get('detector', {}).get('name')}` · "
            f"{meta.get('n_audited')} of {meta.get('n_rows')} images audited · data `{data.get('path')}` "
            f"(labels sha256 {str(data.get('sha256'))[:12]}…) · commit `{str(meta.get('commit'))[:10]}` · "
            f"{meta.get('created')} · {report.config.resamples} resamples, seed {report.config.seed}.\n\n"
            f"Reproduce: `{meta.get('command')}`")
        show_audit(report, "report")

with about:
    st.markdown(f"""
**What the numbers mean.** *Accuracy*: the share of faces whose predicted emotion matches the label.
*Macro-F1*: the average over emotions of how well each is found and not confused with others, so rare
emotions count as much as common ones. *Recall of an emotion*: of the faces labelled with it, the share the
model finds; comparing it across groups is the **equal-opportunity** difference. *Share predicted*: how often
the model says an emotion at all (differences here can simply reflect different label mixes).
*Gap* = highest − lowest group; *ratio* = lowest / highest. The **95% interval** comes from
{settings.get().fairness_bootstrap} bootstrap resamples of whole people: photos of one person are not independent.

**What they do not mean.** A flag says "this difference is unlikely to be chance *in this data*"; it does
not say why (lighting, photo quality, label noise, or the model) and it does not prove the model is fair
elsewhere. No flag is not proof of no bias: small groups give wide intervals. With many comparisons, about
one in twenty intervals misses by chance. Groups with fewer than {settings.get().min_group_size} faces, or fewer
than {settings.get().min_group_subjects} people, are shown but never flagged. An expression label is not a feeling.

**Known biases of the training data.** The model learned from FER-2013: web images with **no demographic
labels**, so nobody can check its balance; mostly adults, few children and elderly; skewed classes (very few
*disgust*, many *happy*); greyscale 48×48 crops; labels that people agree with only about 65% of the time.
The audit sets are small too: the London set has only neutral and happy, and the IMFDB subset only a
few actors, so a "gender" gap there may be about those individuals.

**Responsible use.** Audit with photos of people who **consented**. Never use EmoLens for surveillance or
for **decisions about individuals** (hiring, grading, policing, health). Demographic labels here are
self-reported or public; do not infer anyone's gender, race or age from a photo to fill such a column.
""")

with own:
    audit_own_data()
