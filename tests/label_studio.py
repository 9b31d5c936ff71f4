"""A real Label Studio server for the whole test session, and annotator accounts on it.

A pytest plugin (tests/conftest.py loads it), shared by review, active learning and the loop.
Starting takes about a minute on 2 cores (database setup); a restart on the same data folder about 10 s.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from curate.review.server import LocalLabelStudio, find_label_studio, free_port, personal_access_token, sign_up

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
ADMIN = "admin@localhost"          # the `seedloop review serve` default, so that path is exercised too
ADMIN_PASSWORD = "seedloop-admin-pw-1"
ANNOTATORS = {"ann@example.com": "ann-annotates-42", "bob@example.com": "bob-annotates-42"}


@dataclass
class LiveLabelStudio:
    server: LocalLabelStudio
    token: str = field(repr=False)               # the admin's personal access token; kept out of reports
    annotators: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def env(self, **extra: str) -> dict:
        """Environment for a `seedloop review` command run against this server."""
        return {"LABEL_STUDIO_URL": self.url, "LABEL_STUDIO_API_KEY": self.token, **extra}

    def connect(self, **options):
        from curate.review import connect

        return connect(self.url, self.token, **options)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()
        self.server.wait_ready()


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> LiveLabelStudio:
    """One Label Studio on 127.0.0.1 with a temporary data folder; always stopped at the end."""
    data_dir = tmp_path_factory.mktemp("label-studio")
    server = LocalLabelStudio(data_dir, port=free_port(), executable=find_label_studio(cwd=ROOT))
    server.start(username=ADMIN, password=ADMIN_PASSWORD)
    try:
        server.wait_ready()
        yield LiveLabelStudio(server, personal_access_token(server.url, ADMIN, ADMIN_PASSWORD))
    finally:
        server.stop()


@pytest.fixture(scope="session")
def annotators(label_studio) -> dict:
    """Two annotators who signed up through the form, each with their own SDK client: email -> client."""
    from label_studio_sdk import LabelStudio

    if not label_studio.annotators:
        for email, password in ANNOTATORS.items():
            sign_up(label_studio.url, email, password)
            token = personal_access_token(label_studio.url, email, password)
            label_studio.annotators[email] = LabelStudio(base_url=label_studio.url, api_key=token)
    return label_studio.annotators


@pytest.fixture
def project_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"
