"""Curate fixtures: one embedding cache per test session, so the packaged model encodes each text once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curate.embed import Embedder


@pytest.fixture(scope="session")
def embed_cache(tmp_path_factory):
    # SEEDLOOP_TEST_EMBED_CACHE keeps vectors across local runs (never set in CI: tests embed for real)
    keep = os.environ.get("SEEDLOOP_TEST_EMBED_CACHE")
    return Path(keep) if keep else tmp_path_factory.mktemp("embeddings") / "embeddings.sqlite"


@pytest.fixture(scope="session")
def embedder(embed_cache):
    e = Embedder(cache=embed_cache)
    yield e
    e.close()
