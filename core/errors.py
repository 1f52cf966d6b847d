"""The one shape of a refusal the user sees: a stable `code` for APIs and a plain `message` for people.

Every refusal a person can see (validation, archives, labelled sets, batch, video, settings, the API's
request errors) derives from `UserFacingError`, so pages, CLI and API show any of them the same way,
never as a traceback. A subclass sets its own `code`; one raise site may give a more specific one.
"""
from __future__ import annotations


class UserFacingError(ValueError):
    """Base of every refusal shown to a user: `code` is stable for APIs, `message` is for people."""

    code = "invalid_input"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
