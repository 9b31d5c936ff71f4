"""Embedding and pool scoring on Ray Data against the local executor: the packaged MiniLM, a tiny
Llama built from a config, Banking77 texts. Rows must come back in their order with the same values,
also when a worker process dies mid-job."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate.embed import Embedder, EmbeddingCache
from seedloop.executors.ray_data import EmbedTexts, map_in_order, ray_embedder, vectors_of
from seedloop.core.record import new_record, to_frame
from seedloop.core.tables import read_table, write_table
from tests.conftest import run_cli
from tests.curate.planted import read_banking77, surface_variant

pytestmark = pytest.mark.slow


def _texts(n: int) -> list[str]:
    return list(dict.fromkeys(t for t, _ in read_banking77()))[:n]


@pytest.fixture(scope="module")
def local_embedder():
    return Embedder()


def test_embedding_matches_local_in_order_and_caches_on_the_driver(ray_cluster, local_embedder, tmp_path):
    texts = _texts(300)
    texts += texts[:20]                      # repeated texts are embedded once
    emb = ray_embedder(cache=tmp_path / "e.sqlite", workers=2, rows_per_task=64)
    got = emb.embed(texts)
    assert got.shape == (320, 384)
    np.testing.assert_allclose(got, local_embedder.embed(texts), atol=1e-5)
    assert emb.encoded == 300
    assert EmbeddingCache(tmp_path / "e.sqlite").count() == 300

    more = _texts(310)[300:]                 # a grown table: only the new rows go to Ray
    emb2 = ray_embedder(cache=tmp_path / "e.sqlite", workers=2, rows_per_task=64)
    got2 = emb2.embed(more + texts)
    assert emb2.encoded == 10 and emb2.cached == 320
    np.testing.assert_allclose(got2, local_embedder.embed(more + texts), atol=1e-5)


class CrashOnce(EmbedTexts):
    """Kills its worker process on its first block, once per test (the marker file says it happened)."""

    def __init__(self, marker: str, **kwargs):
        super().__init__(**kwargs)
        self.marker = Path(marker)

    def __call__(self, batch):
        if not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return super().__call__(batch)


def test_worker_killed_mid_job_loses_and_duplicates_no_row(ray_cluster, local_embedder, tmp_path):
    texts = _texts(200)
    table = pa.table({"key": [f"row {i}" for i in range(len(texts))], "text": texts})
    marker = tmp_path / "crashed"
    out = map_in_order(table, CrashOnce, args={"marker": str(marker), "model": None, "batch_size": None,
                                               "device": None}, rows_per_task=50, workers=2, max_retries=2)
    assert marker.exists(), "the worker never crashed: this test tested nothing"
    assert out.column("key").to_pylist() == table.column("key").to_pylist()
    np.testing.assert_allclose(vectors_of(out), local_embedder.embed(texts), atol=1e-5)


def test_an_error_on_a_worker_comes_back_as_ours(ray_cluster):
    from seedloop.core.errors import ConfigError

    table = pa.table({"key": ["a"], "text": ["hello"]})
    with pytest.raises(ConfigError, match="cannot load embedding model '/no/such/model'") as caught:
        map_in_order(table, EmbedTexts, args={"model": "/no/such/model", "batch_size": None, "device": None},
                     rows_per_task=1, workers=1)
    assert "Traceback" not in str(caught.value)


def test_cli_curate_on_ray_keeps_and_drops_the_same_rows(ray_cluster, tmp_path):
    rng = random.Random(0)
    texts = _texts(150)
    texts += [surface_variant(t, rng) for t in texts[:10]] + [f"Hi, {t}" for t in texts[10:20]]
    write_table(to_frame(new_record(t, "", f"Answer {i}.") for i, t in enumerate(texts)), tmp_path / "t.parquet")
    runs = {}
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--ray-address", ray_cluster.address])):
        res = run_cli("curate", tmp_path / "t.parquet", "--out", tmp_path / f"{name}.parquet", "--drops",
                      tmp_path / f"{name}_drops.parquet", "--cache", tmp_path / name / "c.sqlite", *extra)
        assert res.returncode == 0, res.stderr
        assert "embeddings computed / cached" in res.stderr
        drops = read_table(tmp_path / f"{name}_drops.parquet")
        runs[name] = (read_table(tmp_path / f"{name}.parquet")["id"].to_list(),
                      sorted(zip(drops["id"].to_list(), drops["reason"].to_list())))
    assert runs["ray"] == runs["local"]
    assert len(runs["local"][1]) >= 10


# -- pool scoring ---------------------------------------------------------------------------------

WORDS = ["great", "awful", "fine but the delivery was late", "superb", "bad", "meh", "would not buy again",
         "ok", "the best purchase this year by far", "broken on arrival"]
POOL = [new_record("Classify the sentiment of this review.", f"review {i}: {w}") for i, w in enumerate(WORDS * 2)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from train.models import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("ray-models") / "tiny")


@pytest.mark.parametrize("strategy,options", [
    ("mnlp", {}),                                                        # diversity: embeds on Ray too
    ("margin", {"labels": ["positive", "negative"], "diversity": False}),
    ("random", {}),                                                      # answers only the picks
])
def test_selection_on_ray_matches_local(ray_cluster, tiny_model, strategy, options):
    from active_learning.pool import select_from_pool
    from seedloop.executors.ray_data import select_on_ray

    common = dict(strategy=strategy, max_new_tokens=6, batch_size=4, round=1, **options)
    local = select_from_pool(tiny_model, to_frame(POOL), 5, **common)
    # 4 items a pass, one pass a block: 5 blocks over 2 workers
    on_ray = select_on_ray(tiny_model, to_frame(POOL), 5, workers=2, batches_per_task=1, **common)
    assert on_ray.picks["id"].to_list() == local.picks["id"].to_list()
    assert on_ray.scores["id"].to_list() == [r["id"] for r in POOL]
    assert on_ray.scores["output"].to_list() == local.scores["output"].to_list()
    np.testing.assert_allclose(on_ray.pool.uncertainty, local.pool.uncertainty, rtol=1e-5, atol=1e-6)
    assert on_ray.pool.generated_tokens == local.pool.generated_tokens
    assert on_ray.scores.drop("scores").equals(local.scores.drop("scores"))
    if strategy != "random":
        assert np.ptp(local.pool.uncertainty) > 0, "every item scored the same: the comparison shows little"


def test_cli_select_on_ray(ray_cluster, tiny_model, tmp_path):
    from active_learning.pool import select_from_pool

    write_table(to_frame(POOL), tmp_path / "pool.parquet")
    res = run_cli("select", "--model", tiny_model, "--pool", tmp_path / "pool.parquet", "--k", 4, "--out",
                  tmp_path / "picks.parquet", "--max-new-tokens", 6, "--batch-size", 4, "--no-diversity",
                  "--executor", "ray", "--ray-address", ray_cluster.address)
    assert res.returncode == 0, res.stderr
    local = select_from_pool(tiny_model, to_frame(POOL), 4, max_new_tokens=6, batch_size=4, diversity=False)
    picks = read_table(tmp_path / "picks.parquet")
    assert picks["id"].to_list() == local.picks["id"].to_list()
    assert picks["output"].to_list() == local.picks["output"].to_list()
