"""Page-start checks that turn a setup problem into one plain message and a stopped page, never a traceback."""
from __future__ import annotations

import streamlit as st

from core import settings
from core.reports import load_report


def require_settings() -> settings.Settings:
    """The settings, or (a malformed `EMOLENS_*` variable) its plain message and a stopped page.

    Call it right after `st.set_page_config`, before anything else reads a setting (a failed read is not
    kept, so every run of every page checks again)."""
    try:
        return settings.get()
    except settings.SettingsError as exc:
        st.error(exc.message)
        st.stop()


def require_model(model: str | None, consequence: str = "nothing can be analysed") -> str:
    """`model`, or (no emotion model installed) a message saying what cannot be done and a stopped page."""
    if model is None:
        st.error(f"No emotion model is installed in the weights folder, so {consequence}.")
        st.stop()
    return model


def report_or_hint(name: str, what: str, command: str) -> dict | None:
    """The report `weights/reports/<name>.json`, or None after telling the person which command writes it."""
    report = load_report(name)
    if report is None:
        st.info(f"No {what} report yet (`weights/reports/{name}.json`, written by `{command}`).")
    return report
