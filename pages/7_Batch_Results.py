"""Batch Results: explore what `python -m core batch` wrote (CSV or Parquet): shares, folders, videos, errors."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

import core  # noqa: F401
from core import settings
from core.batch.results import (PATH_REFUSED, BatchResults, ResultsError, confidence_summary, confidence_table, emotion_shares,
                                errors_table, read_results, read_results_path, resolve_results_path, to_csv_bytes,
                                video_timeline)
from ui.batch_charts import confidence_chart, group_share_chart, share_chart, timeline_chart
from ui.guards import require_settings

st.set_page_config(page_title="Batch Results · EmoLens", page_icon="🗂️", layout="wide")
require_settings()
st.title("Batch results")
st.markdown(
    "Explore the output of a batch run over many images and videos:\n\n"
    "`python -m core batch photos/ --out results.csv` (add `--engine ray --workers 4` to scale out; see the "
    "README). Load the results below: emotion shares overall and per folder, each video over time, how "
    "confident the model was, and the files that failed. Only the results table is read; no image is needed.")


@st.cache_data(max_entries=4, show_spinner="Reading the results…")
def load_upload(data: bytes, name: str) -> BatchResults:
    return read_results(data, name)


@st.cache_data(max_entries=4, show_spinner="Reading the results…")
def load_path(resolved: str, stamp: float) -> BatchResults:  # stamp: reread when the file changes
    return read_results_path(Path(resolved))


def choose_results() -> BatchResults | None:
    """An upload, or (when this deployment names a results folder) a path below that folder on the server."""
    root = settings.get().batch_results_root
    sources = ["Upload a file"] + (["A path on this machine"] if root is not None else [])
    how = st.radio("Results", sources, horizontal=True, label_visibility="collapsed")
    try:
        if how == "Upload a file":
            up = st.file_uploader("Results file (CSV or Parquet)", type=["csv", "parquet"],
                                  help=f"Up to {settings.get().batch_results_max_bytes // 2**20} MB.")
            return load_upload(up.getvalue(), up.name) if up else None
        path = st.text_input("Results path", placeholder="results.csv, or a results.parquet folder of shards",
                             help="A CSV, a Parquet file or a folder of Parquet shards, relative to the results "
                                  "folder this app is set up to read (EMOLENS_BATCH_RESULTS_ROOT).")
        if not path.strip():
            return None
        target = resolve_results_path(path, root)
        return load_path(str(target), target.stat().st_mtime)
    except ResultsError as exc:
        st.error(exc.message)
        return None
    except OSError:  # the file went away between the check and the read: the same neutral words
        st.error(PATH_REFUSED)
        return None


def download(label: str, table, name: str, key: str) -> None:
    st.download_button(label, to_csv_bytes(table), name, "text/csv", key=key)


def overview(results: BatchResults) -> None:
    shares = emotion_shares(results)
    st.plotly_chart(share_chart(shares), width="stretch", key="share_overall")
    by_folder = emotion_shares(results, "folder")
    if by_folder["folder"].nunique() > 1:
        st.plotly_chart(group_share_chart(by_folder, "folder", "Emotion shares per folder (20 largest)"),
                        width="stretch", key="share_folder")
    left, right = st.columns(2)
    with left:
        download("Download shares overall (CSV)", shares, "emolens_batch_shares.csv", "dl_shares")
    with right:
        download("Download shares per folder (CSV)", by_folder, "emolens_batch_shares_per_folder.csv", "dl_folders")


def videos(results: BatchResults) -> None:
    names = results.videos()
    if not names:
        st.info("No video in these results (video rows carry a frame number and a time).")
        return
    left, right = st.columns([3, 1])
    video = left.selectbox("Video", names)
    smooth = right.slider("Smoothing (s)", 0.0, 10.0, 2.0, 0.5,
                          help="Centred moving average: single frames flicker, the trend is what matters.")
    timeline = video_timeline(results, video, smooth)
    st.plotly_chart(timeline_chart(timeline, f"{video}: share of faces per emotion over time"),
                    width="stretch", key=f"timeline_{video}_{smooth}")
    download("Download this timeline (CSV)", timeline, f"emolens_timeline_{Path(video).stem}.csv", "dl_timeline")


def confidence(results: BatchResults) -> None:
    st.plotly_chart(confidence_chart(confidence_table(results)), width="stretch", key="confidence")
    st.caption("Confidence is the model's calibrated probability of the emotion it predicts; low values mean "
               "the face was ambiguous to it, not that the person felt less.")
    summary = confidence_summary(results)
    st.dataframe(summary, width="stretch", hide_index=True)
    download("Download confidence per emotion (CSV)", summary, "emolens_batch_confidence.csv", "dl_confidence")


def errors(results: BatchResults) -> None:
    table = errors_table(results)
    if table.empty:
        st.success("No file failed.")
        return
    counts = table["error_code"].value_counts()
    st.markdown("  \n".join(f"- `{code}`: {n} file(s)" for code, n in counts.items()))
    st.dataframe(table, width="stretch", hide_index=True)
    download("Download the errors (CSV)", table, "emolens_batch_errors.csv", "dl_errors")


results = choose_results()
if results is None:
    st.info("Waiting for a results file.")
    st.stop()
s = results.summary()
cols = st.columns(5)
for col, (label, value) in zip(cols, [("Files", s.files), ("Faces", s.faces), ("Videos", s.videos),
                                      ("Files without a face", s.no_face_files), ("Files with errors", s.error_files)]):
    col.metric(label, f"{value:,}")
if not s.faces:
    st.warning("No face was found in any file of these results, so there is nothing to chart.")
    errors(results)
    st.stop()
tabs = st.tabs(["Overview", "Videos over time", "Confidence", f"Errors ({s.error_files})"])
for tab, show in zip(tabs, (overview, videos, confidence, errors)):
    with tab:
        show(results)
