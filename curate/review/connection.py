"""One connection to Label Studio: the SDK client behind retries, error messages and token scrubbing.

Retries live here, in one place: the SDK's own retry loop is switched off (max_retries=0) because
it does not cover the token refresh or read timeouts, and because a blind retry of an import could
import a batch twice. `retry(what, fn)` hands `fn` the attempt number, so an import can look up what
already arrived before trying again (see push.py).

The token is never printed: only this object and the SDK client hold it, `repr` hides it, and every message
built from a server or transport error is scrubbed of it before it leaves this module.
"""

from __future__ import annotations

import os
import random
import time
from typing import Callable, TypeVar

from curate.review.errors import AuthFailed, ReviewError, Unreachable
from seedloop.core.errors import ConfigError, SeedloopError

T = TypeVar("T")
URL_ENV, KEY_ENV = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"
TOKEN_HELP = (f"create a personal access token in Label Studio (avatar menu > Account & Settings > "
              f"Personal Access Token) and export it as {KEY_ENV}")
_TRANSIENT_STATUS = {408, 429}
CHECKING_KEY = "checking the API key"


class LabelStudioConnection:
    """The SDK client for one server and token, with `retries` retries and exponential backoff."""

    def __init__(self, url: str, api_key: str, *, retries: int = 4, backoff: float = 1.0,
                 max_backoff: float = 30.0, timeout: float = 120.0):
        from label_studio_sdk import LabelStudio

        self.url = url.rstrip("/")
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self._secret = api_key
        try:
            # subtle: the SDK decodes a JWT token here and raises at once if it has expired
            self.sdk = LabelStudio(base_url=self.url, api_key=api_key, max_retries=0, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - anything the SDK raises must be scrubbed
            raise self.explain(exc, CHECKING_KEY, attempts=1) from None

    def __repr__(self) -> str:
        return f"LabelStudioConnection({self.url!r}, api_key='***')"

    def call(self, what: str, fn: Callable[..., T], *args, **kwargs) -> T:
        """`fn(*args, **kwargs)` with retries; `what` completes 'while ...' in error messages."""
        return self.retry(what, lambda _attempt: fn(*args, **kwargs))

    def retry(self, what: str, fn: Callable[[int], T]) -> T:
        """`fn(attempt)` until it succeeds, a permanent error occurs, or the retries run out."""
        for attempt in range(self.retries + 1):
            try:
                return fn(attempt)
            except SeedloopError:
                raise  # already one of ours, worded for the user
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised scrubbed
                if not is_transient(exc) or attempt == self.retries:
                    raise self.explain(exc, what, attempts=attempt + 1) from None
            time.sleep(self.delay(attempt))
        raise AssertionError("unreachable")

    def delay(self, attempt: int) -> float:
        # "equal jitter": at least half the exponential step, so a restarting server gets time
        step = min(self.max_backoff, self.backoff * 2 ** attempt)
        return step / 2 + random.uniform(0, step / 2)

    def scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def explain(self, exc: Exception, what: str, *, attempts: int) -> ReviewError:
        """A one-line, token-free error for `exc`, raised while doing `what`."""
        return _classify(exc, what, self.url, attempts, self.scrub)


def connect(url: str | None = None, api_key: str | None = None, **options) -> LabelStudioConnection:
    """Connect from arguments, else $LABEL_STUDIO_URL and $LABEL_STUDIO_API_KEY; check the token works."""
    url = url or os.environ.get(URL_ENV)
    api_key = api_key or os.environ.get(KEY_ENV)
    if not url:
        raise ConfigError(f"no Label Studio address: set {URL_ENV} (e.g. http://127.0.0.1:8080, the address "
                          f"`seedloop review serve` prints) or pass --url")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{URL_ENV} must start with http:// or https:// (found {url!r})")
    if not api_key:
        raise ConfigError(f"no Label Studio API key: {TOKEN_HELP}")
    conn = LabelStudioConnection(url, api_key, **options)
    conn.call(CHECKING_KEY, conn.sdk.users.whoami)
    return conn


def is_transient(exc: Exception) -> bool:
    """Worth another try: the transport failed, or the server said 'later' (408, 429, 5xx)."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    if isinstance(exc, httpx.TransportError):
        return True
    status = getattr(exc, "status_code", None) if isinstance(exc, ApiError) else None
    return status is not None and (status >= 500 or status in _TRANSIENT_STATUS)


def _classify(exc: Exception, what: str, url: str, attempts: int, scrub: Callable[[str], str]) -> ReviewError:
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    tries = f" after {attempts} attempt{'s' * (attempts > 1)}"
    if isinstance(exc, httpx.TransportError):
        kind = {httpx.ConnectError: "connection refused or host not found", httpx.TimeoutException: "timed out"}
        reason = next((v for k, v in kind.items() if isinstance(exc, k)), "the connection dropped")
        return Unreachable(scrub(f"cannot reach Label Studio at {url} while {what} ({reason}{tries}); check "
                                 f"{URL_ENV} and that the server is up (a local one: `seedloop review serve`), "
                                 f"then run the same command again: it resumes without duplicating anything"))
    if isinstance(exc, ApiError):
        status, detail = exc.status_code, _detail(exc.body)
        if status == 401 or (status == 403 and what == CHECKING_KEY):
            return AuthFailed(scrub(f"Label Studio at {url} refused the API key in {KEY_ENV} "
                                    f"(HTTP {status}: {detail}); {TOKEN_HELP}"))
        if status == 404:
            return ReviewError(scrub(f"{url} answered 404 (not found) while {what}: check that {URL_ENV} is the "
                                     f"address of a Label Studio server, e.g. http://127.0.0.1:8080"))
        if status is not None and (status >= 500 or status in _TRANSIENT_STATUS):
            return Unreachable(scrub(f"Label Studio at {url} kept failing while {what} (HTTP {status}{tries}): "
                                     f"{detail}; run the same command again once it is healthy"))
        return ReviewError(scrub(f"Label Studio at {url} refused {what} (HTTP {status}): {detail}"))
    if isinstance(exc, ValueError):  # a body that is not the JSON the SDK expects
        return ReviewError(scrub(f"the server at {url} did not answer like Label Studio while {what}: "
                                 f"{type(exc).__name__}; check {URL_ENV}"))
    return ReviewError(scrub(f"{what} failed against {url}: {type(exc).__name__}: {exc}"))


def _detail(body) -> str:
    """The server's own words from an error body, in one short line."""
    if isinstance(body, dict):
        for key in ("detail", "validation_errors", "message", "error"):
            if key in body:
                return " ".join(str(body[key]).split())[:300]
    return " ".join(str(body).split())[:300]
