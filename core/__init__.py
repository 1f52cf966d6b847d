"""EmoLens core library: validation, detection, classification, pipeline, rendering.

Importable without Streamlit. Importing it switches off every network reach-out of the
third-party packages we use (update checks, DNS probes), before they are imported.
"""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ info lines are noise for users
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
