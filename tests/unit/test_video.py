"""Live pipeline and video files on generated frames: tracking, smoothing, the WebRTC callbacks, stale-frame
dropping, thread safety, the ONNX backend, in-memory video decoding, limits and the benchmark's contract."""
from __future__ import annotations

import asyncio
import io
import json
import threading
from fractions import Fraction

import av
import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

import core.emotion.architectures  # noqa: F401
from tests.conftest import reread_settings
from core import settings
from core.detection import Detection, FaceDetector, make_detector
from core.detection.base import box_iou
from core.emotion.card import ModelCard
from core.emotion.classifier import EmotionClassifier
from core.emotion.onnx import OnnxEmotionClassifier, fastest_classifier, onnx_available
from core.emotion.preprocess import crop_face
from core.emotion.vocabulary import EMOTIONS
from core.live.tracking import IoUTracker, LiveAnalyzer, LiveConfig, StageTimings
from core.live.video_analysis import analyze_video
from core.live.video_io import FrameSampler, VideoRejected, open_video
from training.benchmark import generated_frames

CARD = {"name": "tiny", "task": "facial-emotion-classification", "architecture": "emolens_vgg_s",
        "weights": "tiny.safetensors", "input_size": 48, "in_chans": 1, "mean": [0.5], "std": [0.25],
        "classes": list(EMOTIONS), "temperature": 1.0}


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("emolens_vgg_s", num_classes=7, in_chans=1).eval()


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    """A randomly initialised model with a real card: the live code path without shipped weights."""
    card = ModelCard(name="tiny", architecture="emolens_vgg_s", weights="-", input_size=48, in_chans=1,
                     mean=[0.5], std=[0.25], classes=list(EMOTIONS))
    return EmotionClassifier(tiny_model(), card)


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return generated_frames(24)  # one face moving over a background, 640x480 RGB


class ScriptedDetector(FaceDetector):
    """Returns `boxes(call_number)` (pixels of a 640-wide frame, scaled to the image it is given: the live
    pipeline detects on a downscaled copy) and counts how often it ran."""

    name = "scripted"

    def __init__(self, boxes):
        super().__init__(0.5)
        self.boxes, self.calls = boxes, 0

    def _detect(self, image):
        self.calls += 1
        s = image.shape[1] / 640
        return [Detection(box=tuple(v * s for v in b), score=0.9) for b in self.boxes(self.calls)]


class AlternatingClassifier:
    """Stub: odd calls say 'angry' for sure, even calls 'happy' — the worst flicker a model can produce."""

    classes = EMOTIONS
    card = ModelCard(name="alt", architecture="-", weights="-", input_size=48, in_chans=1, mean=[0.5],
                     std=[0.25], classes=list(EMOTIONS))

    def __init__(self):
        self.calls = 0

    def crop(self, image, box):
        return crop_face(image, box, self.card.crop_margin)

    def predict(self, crops):
        self.calls += 1
        p = np.full((len(crops), 7), 0.01, np.float32)
        p[:, 0 if self.calls % 2 else 3] = 0.94
        return p


def av_frame(rgb: np.ndarray, i: int = 0) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")  # what WebRTC delivers
    frame.pts, frame.time_base = i, Fraction(1, 30)
    return frame


def encode_video(frames: list[np.ndarray], fmt: str, codec: str, fps: int = 10) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


# -- tracking -------------------------------------------------------------------------------------------
def test_box_iou():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert iou[0] == pytest.approx([1.0, 1 / 3, 0.0])


def test_tracker_keeps_identity_adds_new_faces_and_ends_lost_ones():
    tracker = IoUTracker(iou_match=0.3, max_misses=1)
    a = tracker.update([Detection((0, 0, 10, 10), 0.9)])[0].track_id
    tracks = tracker.update([Detection((100, 0, 110, 10), 0.9), Detection((1, 0, 11, 10), 0.9)])
    assert {t.track_id for t in tracks} == {a, a + 1}
    assert next(t for t in tracks if t.track_id == a).box[0] == 1  # the moved face kept its id
    tracker.update([Detection((101, 0, 111, 10), 0.9)])  # face `a` missed once: still alive
    assert {t.track_id for t in tracker.tracks} == {a, a + 1}
    tracker.update([Detection((102, 0, 112, 10), 0.9)])  # missed twice: gone
    assert [t.track_id for t in tracker.tracks] == [a + 1]


def test_detector_runs_every_k_frames_and_flow_follows_the_face(classifier, clip):
    det = make_detector("mediapipe")
    first = det.detect(clip[0])[0].box
    scripted = ScriptedDetector(lambda n: [first] if n == 1 else [])
    analyzer = LiveAnalyzer(scripted, classifier, LiveConfig(detect_every=100))
    frames = [analyzer.process(rgb, t=i / 30) for i, rgb in enumerate(clip[:12])]
    assert scripted.calls == 1 and frames[0].detected and not any(f.detected for f in frames[1:])
    assert all(len(f.faces) == 1 and f.faces[0].track_id == 1 for f in frames)
    assert frames[0].timings.detect > 0 and all(f.timings.detect == 0 for f in frames[1:])
    truth = det.detect(clip[11])[0].box  # where the detector would put the face after 11 frames of motion
    tracked = frames[11].faces[0].box
    moved = abs(truth[0] - first[0]) + abs(truth[1] - first[1])
    assert moved > 15  # the clip really moves the face...
    assert abs(tracked[0] - truth[0]) + abs(tracked[1] - truth[1]) < 0.35 * moved  # ...and flow followed it

    every3 = ScriptedDetector(lambda n: [first])
    analyzer = LiveAnalyzer(every3, classifier, LiveConfig(detect_every=3))
    pattern = [analyzer.process(rgb, t=i / 30).detected for i, rgb in enumerate(clip[:9])]
    assert pattern == [True, False, False] * 3 and every3.calls == 3


def test_detection_on_a_downscaled_frame_maps_boxes_back(classifier, clip):
    full = LiveAnalyzer(make_detector("mediapipe"), classifier, LiveConfig(detect_max_side=0))
    small = LiveAnalyzer(make_detector("mediapipe"), classifier, LiveConfig(detect_max_side=320))
    a, b = full.process(clip[0]).faces[0].box, small.process(clip[0]).faces[0].box
    assert box_iou(np.array([a]), np.array([b]))[0, 0] > 0.8


def test_smoothing_stops_label_flicker():
    box = (100.0, 100.0, 200.0, 200.0)
    frame = np.full((480, 640, 3), 128, np.uint8)

    def labels(smoothing_s: float) -> list[str]:
        an = LiveAnalyzer(ScriptedDetector(lambda n: [box]), AlternatingClassifier(),  # type: ignore[arg-type]
                          LiveConfig(detect_every=1, smoothing_s=smoothing_s))
        return [an.process(frame, t=i / 30).faces[0].label for i in range(30)]

    raw = labels(0.0)
    assert sum(x != y for x, y in zip(raw, raw[1:])) == 29  # flips on every frame without smoothing
    smooth = labels(0.5)
    assert sum(x != y for x, y in zip(smooth, smooth[1:])) <= 2


def test_smoothing_weight_follows_elapsed_time():
    an = LiveAnalyzer(ScriptedDetector(lambda n: []), AlternatingClassifier(),  # type: ignore[arg-type]
                      LiveConfig(smoothing_s=0.5))
    old, new = np.eye(7, dtype=np.float32)[0], np.eye(7, dtype=np.float32)[3]
    out = an._smooth(old, new, dt=0.5)  # one time constant: the new frame weighs 1 - 1/e
    assert out[3] == pytest.approx(1 - np.exp(-1), abs=1e-6) and out.sum() == pytest.approx(1)


# -- the WebRTC callbacks --------------------------------------------------------------------------------
def test_frame_callback_annotates_and_times_every_stage(classifier, clip):
    analyzer = LiveAnalyzer(make_detector("mediapipe"), classifier, LiveConfig(landmarks=True))
    for i, rgb in enumerate(clip[:8]):
        out = analyzer.frame_callback(av_frame(rgb, i))
    assert isinstance(out, av.VideoFrame) and (out.width, out.height) == (640, 480)
    drawn = out.to_ndarray(format="rgb24").astype(int)
    original = av_frame(clip[7]).to_ndarray(format="rgb24").astype(int)
    face = analyzer.last_frame.faces[0]
    x1, y1, x2, y2 = (int(v) for v in face.box)
    assert np.abs(drawn - original)[y1 - 3:y2 + 3, x1 - 3:x2 + 3].mean() > 5  # the box and label are drawn
    assert face.landmarks is not None and face.landmarks.shape == (6, 2)
    stats = analyzer.snapshot()
    assert stats.frames == 8 and stats.dropped == 0 and stats.fps > 0 and len(stats.faces) == 1
    for stage in ("convert_in", "detect", "track", "classify", "render", "convert_out", "total"):
        assert stats.timings_ms[stage] > 0, stage
    assert stats.timings_ms["total"] >= sum(stats.timings_ms[s] for s in StageTimings.STAGES) * 0.9
    shares = stats.history.groupby("time_s")["share"].sum()
    assert np.allclose(shares, 1.0) and (stats.history["time_s"] <= 0).all()


def test_queued_callback_drops_stale_frames(classifier, clip):
    analyzer = LiveAnalyzer(make_detector("mediapipe"), classifier)
    frames = [av_frame(rgb, i) for i, rgb in enumerate(clip[:4])]
    out = asyncio.run(analyzer.queued_frames_callback(frames))
    assert len(out) == 1
    assert analyzer.last_frame.time_s == pytest.approx(frames[-1].time)  # the newest frame was analysed
    stats = analyzer.snapshot()
    assert (stats.frames, stats.dropped) == (1, 3)


def test_callbacks_are_thread_safe(classifier, clip):
    analyzer = LiveAnalyzer(make_detector("mediapipe"), classifier)
    errors: list[BaseException] = []
    done = threading.Event()

    def feed(offset: int) -> None:
        try:
            for i, rgb in enumerate(clip[:10]):
                analyzer.frame_callback(av_frame(rgb, offset + i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def poll() -> None:
        while not done.is_set():
            try:
                analyzer.snapshot()
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)

    workers = [threading.Thread(target=feed, args=(k * 100,)) for k in range(2)]
    poller = threading.Thread(target=poll)
    poller.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    poller.join()
    assert not errors
    assert analyzer.snapshot().frames == 20


# -- ONNX Runtime backend ---------------------------------------------------------------------------------
@pytest.mark.skipif(not onnx_available(), reason="onnxruntime/onnx not installed")
def test_onnx_backend_matches_torch(classifier, clip):
    onnx_clf = OnnxEmotionClassifier(classifier)
    crops = [clip[0][100:300, 200:400], clip[5][50:150, 300:420], np.zeros((20, 30, 3), np.uint8)]
    np.testing.assert_allclose(onnx_clf.predict(crops), classifier.predict(crops), atol=1e-5)
    np.testing.assert_allclose(onnx_clf.predict(crops, tta_flip=True), classifier.predict(crops, tta_flip=True),
                               atol=1e-5)
    assert onnx_clf.predict([]).shape == (0, 7)
    chosen, choice = fastest_classifier(classifier, repeats=5, budget_s=1)
    assert choice.torch_ms and choice.onnx_ms and choice.max_abs_diff < 1e-3
    assert (chosen is classifier) == (choice.backend == "torch")
    assert choice.backend == ("onnxruntime" if choice.onnx_ms < choice.torch_ms else "torch")


def test_backend_choice_can_be_forced_and_checked(classifier):
    assert fastest_classifier(classifier, "torch")[0] is classifier
    with pytest.raises(ValueError, match="Unknown classifier backend"):
        fastest_classifier(classifier, "tensorrt")


# -- video files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, codec", [("mp4", "mpeg4"), ("webm", "libvpx"), ("avi", "mjpeg")])
def test_video_file_timeline_from_memory(classifier, clip, fmt, codec):
    data = encode_video(clip[:12], fmt, codec)
    seen: list[float] = []
    result = analyze_video(data, LiveAnalyzer(make_detector("mediapipe"), classifier, LiveConfig(detect_every=1)),
                           f"clip.{fmt}", progress=lambda f, text: seen.append(f))
    assert (result.info.width, result.info.height) == (640, 480) and result.info.fps == pytest.approx(10)
    assert len(result.frames) == 12 and seen[-1] == 1.0
    table = result.table()
    assert len(table) >= 11 and table["face"].nunique() == 1  # one face, one track
    assert table["time_s"].tolist()[:3] == pytest.approx([0.0, 0.1, 0.2])
    assert np.allclose(table[[f"p_{e}" for e in EMOTIONS]].sum(axis=1), 1, atol=1e-3)
    header = result.to_csv().decode().splitlines()[0].split(",")
    assert header[:10] == ["frame", "time_s", "face", "x1", "y1", "x2", "y2", "score", "emotion", "confidence"]
    assert "p_happy" in header and "raw_happy" in header


def test_video_stride_skips_frames(classifier, clip):
    data = encode_video(clip[:12], "avi", "mjpeg")
    result = analyze_video(data, LiveAnalyzer(make_detector("mediapipe"), classifier), stride=4)
    assert [f.index for f in result.frames] == [0, 4, 8]
    assert [f.time_s for f in result.frames] == pytest.approx([0.0, 0.4, 0.8])


def test_one_sampler_for_strides_and_frame_rates(clip):
    """The live page's every-n-th frame and batch's frames per second are the same sampler: a rate is a step."""
    data = encode_video(clip[:12], "avi", "mjpeg")
    by_stride = [(f.index, f.t_s) for f in FrameSampler(data, stride=4)]
    assert by_stride == [(0, 0.0), (4, pytest.approx(0.4)), (8, pytest.approx(0.8))]
    assert [(f.index, f.t_s) for f in FrameSampler(data, fps=2.5)] == by_stride
    assert [f.index for f in FrameSampler(data, fps=30)] == list(range(12))  # never more than every frame
    frame = next(iter(FrameSampler(data)))
    assert frame.rgb.shape == (480, 640, 3) and frame.rgb.dtype == np.uint8
    with pytest.raises(ValueError, match="not both"):
        FrameSampler(data, stride=2, fps=5)


def test_sampler_stops_at_the_length_limit_and_says_so(clip):
    data = encode_video(clip[:12], "avi", "mjpeg")
    sampler = FrameSampler(data, stride=2)
    sampler.max_frames = 5  # as a container that does not state its length, cut at video_max_seconds
    assert [f.index for f in sampler] == [0, 2, 4] and sampler.truncated and sampler.position == 5
    whole = FrameSampler(data, stride=2)
    assert len(list(whole)) == 6 and not whole.truncated and whole.position == 12


def test_bad_videos_get_plain_messages(monkeypatch, clip):
    with pytest.raises(VideoRejected) as err:
        open_video(b"")
    assert err.value.code == "empty_file"
    with pytest.raises(VideoRejected) as err:
        open_video(b"%PDF-1.4 this is not a video" * 100)
    assert err.value.code == "corrupt_video" and "mp4, webm or avi" in err.value.message
    data = encode_video(clip[:12], "avi", "mjpeg")
    settings.configure(video_max_seconds=0.5)
    with pytest.raises(VideoRejected) as err:
        open_video(data)
    assert err.value.code == "too_long" and "1 s" in err.value.message
    settings.configure(video_max_upload_bytes=1000)
    with pytest.raises(VideoRejected) as err:
        open_video(data)
    assert err.value.code == "file_too_large"


def test_ice_servers_setting(monkeypatch):
    monkeypatch.delenv("EMOLENS_ICE_SERVERS", raising=False)
    assert reread_settings().ice_servers == ()  # localhost: no STUN/TURN server is contacted
    monkeypatch.setenv("EMOLENS_ICE_SERVERS", '[{"urls": ["stun:stun.example.org:3478"]}]')
    assert reread_settings().ice_servers == ({"urls": ["stun:stun.example.org:3478"]},)
    for bad in ("[{urls: 1}", '{"urls": "stun:x"}', '[{"url": "stun:x"}]'):
        monkeypatch.setenv("EMOLENS_ICE_SERVERS", bad)
        with pytest.raises(settings.SettingsError, match="EMOLENS_ICE_SERVERS"):
            settings.Settings.from_env()


# -- the benchmark's output contract ------------------------------------------------------------------------
def test_benchmark_cli_contract(tmp_path, monkeypatch):
    from training import benchmark

    save_file(tiny_model().state_dict(), str(tmp_path / "tiny.safetensors"))
    (tmp_path / "tiny.json").write_text(json.dumps(CARD))
    monkeypatch.setenv("EMOLENS_WEIGHTS_DIR", str(tmp_path))
    reread_settings()
    out = tmp_path / "bench.json"
    assert benchmark.main(["--json", str(out), "--frames", "16", "--warmup", "4", "--model", "tiny"]) == 0
    report = json.loads(out.read_text())
    assert report["fps_640x480"] > 0 and report["frames_timed"] == 12
    assert set(report["stages_ms"]) == set(StageTimings.STAGES)
    assert report["face_found_ratio"] >= 0.9 and report["tracks_started"] == 1
    assert report["classifier"]["backend"] in ("torch", "onnxruntime")
    assert report["video"]["width"] == 640 and report["video"]["height"] == 480
    assert report["meets_target"] == (report["fps_640x480"] >= 25)


def test_optional_landmarker_points_are_drawn_and_timed(classifier, clip):
    class CornerLandmarker:
        def landmarks(self, image, box):
            x1, y1, x2, y2 = box
            return np.array([[x1, y1], [x2, y2]], np.float32)

    analyzer = LiveAnalyzer(make_detector("mediapipe"), classifier, LiveConfig(landmarks=True), CornerLandmarker())
    frame = analyzer.process(clip[0])
    face = frame.faces[0]
    assert face.landmarks.shape == (2, 2) and face.landmarks[0, 0] == pytest.approx(face.box[0])
    assert frame.timings.landmarks > 0
    off = LiveAnalyzer(make_detector("mediapipe"), classifier, LiveConfig(landmarks=False), CornerLandmarker())
    assert off.process(clip[0]).faces[0].landmarks is None
