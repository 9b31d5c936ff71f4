"""Errors of the review stage. Messages name the server, never the token."""

from __future__ import annotations

from seedloop.core.errors import SeedloopError


class ReviewError(SeedloopError):
    """Label Studio refused or failed a request, or a project is not what we expect."""


class Unreachable(ReviewError):
    """No answer from Label Studio (refused, dropped, timed out, or 5xx) after every retry."""


class AuthFailed(ReviewError):
    """The server answered, but not to this token."""

    exit_code = 2


class UnknownProject(ReviewError):
    exit_code = 2
