"""EmoLens home: what the app does, how to use it, the shipped model's card, privacy and ethics."""
from __future__ import annotations

import streamlit as st

import core  # noqa: F401  (switches off third-party network reach-outs before anything else loads)
from core import settings
from ui.guards import require_settings
from ui.resources import model_card

st.set_page_config(page_title="EmoLens", page_icon="🙂", layout="wide")
require_settings()

st.title("EmoLens — facial emotion analysis, offline")
st.markdown(
    "EmoLens finds faces in photos and estimates which of seven basic expressions each one shows: "
    "**angry, disgust, fear, happy, sad, surprise, neutral**. Everything runs on this machine: "
    "no image is sent anywhere, and nothing you upload is written to disk."
)

st.subheader("How to use it")
st.markdown(
    "1. Open **Upload and Predict** in the sidebar and drop one or more photos (JPEG, PNG, WebP, BMP or TIFF, "
    f"up to {settings.get().max_upload_bytes // 2**20} MB and {settings.get().max_megapixels:.0f} megapixels "
    "each). Pick a face detector and its threshold if the defaults miss faces or find false ones; download the "
    "results as CSV or JSON and the annotated image as PNG.\n"
    "2. **Annotate**: the model pre-labels every face, you confirm or correct it (least confident first), "
    "export the labelled set, and fine-tune a model on it.\n"
    "3. **Model Comparison**: confusion matrices, per-class metrics, calibration, the architecture and "
    "detector experiments, and evaluation on your own labelled zip.\n"
    "4. **Landmark Analysis**: 68-point landmarks from MediaPipe and dlib, and how well each matches "
    "hand-labelled points.\n"
    "5. **Fairness Audit**: accuracy and per-emotion recall by group, with confidence intervals.\n"
    "6. **Live Webcam**: real-time analysis of your camera or of a video file, with a timeline.\n"
    "7. **Batch Results**: explore the output of `python -m core batch` over large image and video "
    "collections."
)

st.subheader("The emotion model")
try:
    card = model_card()
except (FileNotFoundError, KeyError, ValueError) as exc:
    st.error(f"The shipped emotion model could not be read: {exc}")
else:
    metrics = card.metrics
    cols = st.columns(4)
    cols[0].metric("Architecture", f"ensemble of {len(card.members)}" if card.members else card.architecture)
    cols[1].metric("Parameters", f"{card.raw.get('parameters', 0) / 1e6:.1f} M")
    test = metrics.get("PrivateTest", {})
    val = metrics.get("PublicTest", metrics.get("PublicTest+tta", {}))
    cols[2].metric("FER-2013 test accuracy", f"{test['accuracy']:.1%}" if "accuracy" in test else "not measured")
    cols[3].metric("Validation accuracy", f"{val['accuracy']:.1%}" if "accuracy" in val else "not measured")
    st.caption(
        f"Input: {card.input_size}×{card.input_size} {'greyscale' if card.in_chans == 1 else 'colour'} face. "
        f"Trained on {card.raw.get('training_data', {}).get('name', 'FER-2013')}. "
        f"Calibration temperature {card.temperature:.2f}. "
        + (f"Members: {', '.join(card.members)}, averaged, with the mirrored face. " if card.members else "")
        + f"The Live Webcam page uses the faster `{settings.get().live_emotion_model}` by default. "
        f"Reproduce: `{card.raw.get('command', '')}`. "
        "For reference, people agree with FER-2013's labels about 65% of the time."
    )
    with st.expander("Full model card (JSON)"):
        st.json({k: v for k, v in card.raw.items() if k != "training"}, expanded=False)

st.subheader("Privacy and responsible use")
st.markdown(
    "- **Your images stay here.** They are processed in memory and forgotten when you close the tab; "
    "only the downloads you ask for leave the app.\n"
    "- **An expression is not a feeling.** The model reads facial muscle patterns that people *often* "
    "show with an emotion; the same face can mean different things across people, cultures and "
    "situations. Treat outputs as noisy signals about expressions, never as facts about a person.\n"
    "- **No decisions about individuals.** Do not use EmoLens to hire, grade, diagnose, police or "
    "surveil anyone. Ask for consent before analysing someone's face.\n"
    "- **Known bias.** FER-2013 was scraped from the web, has no demographic labels, and is skewed "
    "(few *disgust* examples, mostly adults, posed and in-the-wild mixed). Accuracy differs between "
    "groups and conditions; audit it on your own population before relying on it."
)
