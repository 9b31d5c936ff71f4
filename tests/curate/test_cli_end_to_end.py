"""`seedloop generate` then `seedloop curate`: the curated table, the drops and the HTML report.

Generation talks to the fake OpenAI-wire server (fast and deterministic); curation runs the real
embedding model, faiss and, for the judge, the same fake server through the real OpenAI client.
"""

import re

import polars as pl
import pytest

from seedloop.core.tables import read_table
from tests.conftest import EXAMPLE_SEEDS, run_cli


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from tests.fakes import FakeLLMServer

    server = FakeLLMServer()
    tmp = tmp_path_factory.mktemp("e2e")
    out = tmp / "generated.parquet"
    res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--n", 40, "--out", out, "--teacher", "openai:fake",
                  "--base-url", server.url, "--cache", tmp / "cache.sqlite", env={"OPENAI_API_KEY": ""})
    assert res.returncode == 0, res.stderr
    # plant copies the way a noisy teacher makes them, so curation has something to find
    df = read_table(out)
    copies = df.head(5).with_columns(pl.col("instruction").str.to_uppercase())
    noisy = tmp / "noisy.parquet"
    pl.concat([df, copies]).write_parquet(noisy)
    yield tmp, noisy, server
    server.close()


@pytest.mark.slow
def test_curate_writes_table_drops_and_report(generated, embed_cache):
    tmp, noisy, server = generated
    out, drops, report = tmp / "curated.parquet", tmp / "drops.jsonl", tmp / "report.html"
    res = run_cli("curate", noisy, "--out", out, "--drops", drops, "--report", report, "--cache",
                  tmp / "cache.sqlite", "--embed-cache", embed_cache, "--judge", "openai:fake",
                  "--base-url", server.url, "--min-score", "3", "--select", "30", env={"OPENAI_API_KEY": ""})
    assert res.returncode == 0, res.stderr
    kept, dropped, total = read_table(out), pl.read_ndjson(drops), read_table(noisy).height
    assert kept.height + dropped.height == total and kept.height <= 30
    exact = dropped.filter(pl.col("reason") == "exact_duplicate")
    assert exact.height >= 5 and exact["scores"].struct.field("similarity").to_list() == [1.0] * exact.height
    assert set(exact["scores"].struct.field("dup_of")) <= set(read_table(noisy)["id"])
    # the fake judge answers prose without a score: counted, kept, and its words stored as the reason
    assert "judge answers without a score" in res.stderr
    reasons = kept["scores"].struct.field("judge_reason").to_list()
    assert all(r.startswith("no score in the judge's answer") for r in reasons)

    html = report.read_text()
    assert html.count("data:image/png;base64,") >= 3          # histogram, curve, map
    assert not re.search(r"""(src|href)=["']?https?:""", html)  # self-contained
    assert "exact_duplicate" in html and "Counts per step" in html and "fraction removed" in res.stderr.lower()


@pytest.mark.slow
def test_rerun_converges_and_embeds_nothing_new(generated, embed_cache):
    tmp, noisy, _ = generated
    args = ["curate", noisy, "--cache", tmp / "cache.sqlite", "--embed-cache", embed_cache]
    first = run_cli(*args, "--out", tmp / "a.parquet")
    second = run_cli(*args, "--out", tmp / "b.parquet")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert re.search(r"embeddings computed / cached\s*│?\s*0 /", second.stderr), second.stderr
    assert read_table(tmp / "a.parquet").equals(read_table(tmp / "b.parquet"))
