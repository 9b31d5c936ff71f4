"""`seedloop generate` then `seedloop curate`: the curated table, the drops and the HTML report.

Generation talks to the fake OpenAI-wire server (fast and deterministic); curation runs the real
embedding model, faiss and, for the judge, the same fake server through the real OpenAI client; its
verdicts (a score, a low score, or no score) follow a rule the test knows, so --min-score is checked exactly.
"""

import re

import polars as pl
import pytest

from seedloop.core.record import make_id
from seedloop.core.tables import read_table
from tests.conftest import EXAMPLE_SEEDS, run_cli
from tests.fakes import judge_score


def _row(stderr: str, name: str) -> str:
    """The value of one row of the summary table `seedloop curate` prints."""
    m = re.search(rf"{re.escape(name)}\s*│\s*(.+?)\s*│", stderr)
    assert m, f"no row {name!r} in:\n{stderr}"
    return m.group(1)


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
    ids = [make_id(r["instruction"], r["input"]) for r in copies.iter_rows(named=True)]   # their own content ids
    copies = copies.with_columns(pl.Series("id", ids))
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
    planted = read_table(noisy)
    planted = {frozenset(p) for p in zip(planted.head(5)["id"], planted.tail(5)["id"])}   # (original, copy)
    assert planted <= {frozenset(p) for p in zip(exact["id"], exact["scores"].struct.field("dup_of"))}
    # --min-score 3 runs on the rows the dedup steps kept, before --select: those are the rows kept, dropped
    # low_score or not_selected. The fake judge's verdict on each is known (tests/fakes.py judge_score).
    cols = ["id", "output", "scores"]
    judged = pl.concat([kept.select(cols), dropped.filter(pl.col("reason").is_in(["low_score", "not_selected"]))
                        .select(cols)], how="vertical_relaxed")
    expected = {r["id"]: judge_score(r["output"]) for r in judged.iter_rows(named=True)}
    low = {i for i, s in expected.items() if s is not None and s < 3}
    unscored = {i for i, s in expected.items() if s is None}
    assert low and unscored and len(low) + len(unscored) < len(expected)      # all three kinds of verdict
    low_rows = dropped.filter(pl.col("reason") == "low_score")
    assert set(low_rows["id"]) == low                                          # exactly the low-scored rows
    assert sorted(low_rows["detail"]) == sorted(f"judge score {expected[i]} < 3" for i in low_rows["id"])
    assert _row(res.stderr, "dropped: low_score") == str(len(low))
    assert _row(res.stderr, "step: judge --min-score") == f"{len(expected)} -> {len(expected) - len(low)}"
    assert _row(res.stderr, "judge requests sent / cached") == f"{len(expected)} / 0"
    # the scores parsed from the wire are stored; an answer with no score is counted, kept and quoted
    stored = dict(zip(judged["id"], judged["scores"].struct.field("judge_score")))
    assert stored == {i: None if s is None else float(s) for i, s in expected.items()}
    assert _row(res.stderr, "judge answers without a score") == str(len(unscored))
    reasons = dict(zip(judged["id"], judged["scores"].struct.field("judge_reason")))
    assert all(reasons[i].startswith("no score in the judge's answer: 'The response talks") for i in unscored)
    assert not unscored & set(low_rows["id"]) and unscored & set(kept["id"])

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
