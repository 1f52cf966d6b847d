"""Live Webcam: real-time emotions from a camera over WebRTC, and emotion timelines of video files.

Frames are analysed in memory and dropped; no frame is stored, only numbers (boxes, probabilities, timings).
"""
from __future__ import annotations

import hashlib

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

import core  # noqa: F401
from core import settings
from core.landmarks import available_landmarkers, landmarker_label
from core.render import EMOTION_COLORS
from core.live.tracking import LiveAnalyzer, LiveConfig, LiveStats
from core.live.video_io import VideoRejected
from core.live.video_analysis import analyze_video
from ui.guards import require_model, require_settings
from ui.pickers import pick_detector, pick_model
from ui.resources import get_detector, get_landmarker, get_live_classifier

st.set_page_config(page_title="Live Webcam · EmoLens", page_icon="🎥", layout="wide")
require_settings()
COLORS = {e: f"rgb{c}" for e, c in EMOTION_COLORS.items()}

st.title("Live Webcam")
st.markdown("Real-time expression estimates from your camera, or a timeline for a video file. Frames are "
            "analysed in memory and **never stored**; the stream goes only between your browser and this app.")

with st.sidebar:
    st.header("Settings")
    detector_name, threshold = pick_detector(settings.get().live_detector)
    model = pick_model(settings.get().live_emotion_model)
    detect_every = st.slider("Run the detector every k frames", 1, 10, settings.get().live_detect_every,
                             help="Between detections, faces are followed by optical flow (much cheaper).")
    smoothing = st.slider("Label smoothing (seconds)", 0.0, 2.0, settings.get().live_smoothing_s, 0.1,
                          help="Time constant of the moving average of each face's probabilities; 0 = none.")
    marks = ["off", "detector keypoints"] + available_landmarkers()
    mark = st.selectbox("Landmarks", marks, format_func=lambda m: m if m in marks[:2] else landmarker_label(m),
                        help="Detector keypoints are free; a landmarker costs several ms per face.")

model = require_model(model)
classifier, backend = get_live_classifier(model)
detector = get_detector(detector_name, threshold)
extra = get_landmarker(mark) if mark in available_landmarkers() else None
config = LiveConfig(detect_every=detect_every, smoothing_s=smoothing, landmarks=mark != "off")


def share_chart(stats: LiveStats) -> go.Figure:
    """Stacked shares per emotion. Plain graph_objects: ~10x less Python than plotly.express, which matters
    because this redraw shares the interpreter with the frame callback while streaming."""
    wide = stats.history.pivot(index="time_s", columns="emotion", values="share")
    fig = go.Figure([go.Scatter(x=wide.index, y=wide[e], name=e, stackgroup="s", mode="lines",
                                line=dict(color=COLORS.get(e))) for e in classifier.classes if e in wide])
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=10, b=10), yaxis_tickformat=".0%",
                      xaxis_title="seconds ago", yaxis_title="share of faces")
    return fig


live_tab, file_tab = st.tabs(["Webcam", "Video file"])

with file_tab:
    st.markdown(f"Upload **{', '.join(settings.VIDEO_FORMATS)}**, up to "
                f"{settings.get().video_max_upload_bytes // 2**20} MB and {settings.get().video_max_seconds:.0f} s. Each "
                "analysed frame gets the detector (every frame), tracking, and smoothed probabilities.")
    upload = st.file_uploader("Video", type=list(settings.VIDEO_FORMATS))
    stride = st.number_input("Analyse every n-th frame", 1, 30, 1, help="1 = every frame (slowest).")
    if upload is not None:
        data = upload.getvalue()
        key = "|".join([hashlib.sha256(data).hexdigest(), detector_name, f"{threshold:.2f}", model,
                        f"{smoothing:.1f}", str(stride)])
        if st.session_state.get("video_key") != key:
            bar = st.progress(0.0, text="Decoding and analysing…")
            analyzer = LiveAnalyzer(detector, classifier, LiveConfig(detect_every=1, smoothing_s=smoothing))
            try:
                result = analyze_video(data, analyzer, upload.name, int(stride),
                                       progress=lambda f, text: bar.progress(f, text=text))
            except VideoRejected as exc:
                result = exc
            bar.empty()
            st.session_state.update(video_key=key, video_result=result)
        result = st.session_state["video_result"]
        if isinstance(result, VideoRejected):
            st.error(result.message)
        else:
            table = result.table()
            for note in result.notes:
                st.caption(f"ℹ️ {note}")
            st.success(f"{result.info.describe()}: {len(result.frames)} frames analysed in {result.seconds:.1f} s, "
                       f"{table['face'].nunique()} face track(s).")
            if table.empty:
                st.warning("No face was found. Try a lower detection threshold or another detector.")
            else:
                tracks = sorted(table["face"].unique())
                face = st.selectbox("Face", tracks, format_func=lambda t: f"#{t}") if len(tracks) > 1 else tracks[0]
                rows = table[table["face"] == face]
                long = rows.melt(id_vars=["time_s"], value_vars=[f"p_{c}" for c in result.classes],
                                 var_name="emotion", value_name="probability")
                long["emotion"] = long["emotion"].str.removeprefix("p_")
                fig = px.line(long, x="time_s", y="probability", color="emotion", color_discrete_map=COLORS)
                fig.update_layout(height=360, xaxis_title="time (s)", yaxis_tickformat=".0%", legend_title=None)
                st.plotly_chart(fig, use_container_width=True)
                shares = rows["emotion"].value_counts(normalize=True)
                st.caption("Share of analysed frames per (smoothed) emotion: "
                           + ", ".join(f"{e} {s:.0%}" for e, s in shares.items()))
            st.download_button("Download timeline (CSV)", result.to_csv(),
                               f"{upload.name.rsplit('.', 1)[0]}_emotions.csv", "text/csv")

with live_tab:
    ice = list(settings.get().ice_servers)
    session_key = (detector_name, threshold, model, detect_every, smoothing, mark)
    if st.session_state.get("live_key") != session_key:  # new settings: fresh tracks and statistics
        st.session_state.update(live_key=session_key, live_analyzer=LiveAnalyzer(detector, classifier, config, extra))
    live: LiveAnalyzer = st.session_state["live_analyzer"]
    st.caption("Press **START** and allow the camera. "
               + ("No ICE server is configured: this works on localhost and the same network; set "
                  "`EMOLENS_ICE_SERVERS` for a deployment behind NAT." if not ice else
                  f"{len(ice)} ICE server(s) configured by EMOLENS_ICE_SERVERS."))
    try:
        ctx = webrtc_streamer(
            key="emolens-live", mode=WebRtcMode.SENDRECV, rtc_configuration={"iceServers": ice},
            media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
            queued_video_frames_callback=live.queued_frames_callback, async_processing=True)
    except Exception as exc:  # e.g. a headless script run without a browser session: keep the file tab usable
        st.warning(f"The live stream cannot start in this session ({type(exc).__name__}). "
                   "Open the app in a browser to use the webcam; the Video file tab works without it.")
        st.stop()

    @st.fragment(run_every=settings.get().live_readout_refresh_s if ctx.state.playing else None)
    def readout() -> None:
        stats = live.snapshot()
        cols = st.columns(4)
        cols[0].metric("Frames per second", f"{stats.fps:.1f}")
        cols[1].metric("Latency per frame", f"{stats.timings_ms['total']:.1f} ms")
        cols[2].metric("Faces", len(stats.faces))
        cols[3].metric("Stale frames dropped", stats.dropped)
        st.caption(f"{stats.frames} frames processed · classifier backend: {backend.backend} · mean ms per stage "
                   "over the last frames: " + ", ".join(f"{k.replace('_', ' ')} {v:.1f}"
                                                        for k, v in stats.timings_ms.items() if k != "total"))
        for i, f in enumerate(stats.faces, start=1):  # numbered as on the video
            st.markdown(f"**Face #{i}: {f.label}** {f.confidence:.0%} (smoothed)")
        if not stats.history.empty:
            st.plotly_chart(share_chart(stats), use_container_width=True)

    readout()
