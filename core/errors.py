"""The one shape of a refusal the user sees: a stable `code` for APIs and a plain `message` for people.

Validation, archive and batch errors all derive from `UserFacingError`, so pages, CLI and API show any of
them the same way, never as a traceback.
"""
from __future__ import annotations


class UserFacingError(ValueError):
    """Base of every refusal shown to a user: `code` is stable for APIs, `message` is for people."""

    code = "invalid_input"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
