"""Read the JSON reports in `weights/reports/` that the evaluation CLIs write.

Pages show only what these files hold, so every number on screen traces to a report, and each report
records the command that produced it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core import settings


def reports_dir() -> Path:
    return settings.get().reports_dir


def load_report(name: str) -> dict[str, Any] | None:
    """`name` without `.json`; None when the report has not been produced yet (or is unreadable)."""
    path = reports_dir() / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def classifier_reports() -> dict[str, dict[str, Any]]:
    """Every `classifier_*.json` report, keyed by a readable label: "<model> · <split>[ · TTA]"."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(reports_dir().glob("classifier_*.json")):
        try:
            rep = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        labels = rep.get("labels", "fer2013")
        label = (f"{rep.get('model', path.stem)} · {rep.get('split', '?')}"
                 + ("" if labels == "fer2013" else " · FER+ labels") + (" · TTA" if rep.get("tta") else ""))
        found[label] = rep
    return found
