"""Decontamination: rows copied from an --against file go, unrelated rows stay (end to end, real model)."""

import json
import random

import polars as pl
import pytest

from curate.decontaminate import edit_matches, ngram_matches
from tests.conftest import run_cli
from tests.curate.planted import light_edit, read_banking77


def test_ngram_overlap_finds_a_copied_passage_inside_a_longer_row():
    evals = ["My card payment was declined at the shop yesterday and I do not know why"]
    rows = ["Write a reply: my card payment was declined at the shop yesterday and I am upset",
            "My card was declined"]
    got = ngram_matches(rows, evals, n=8)
    assert got == {0: (0, "my card payment was declined at the shop")}   # the first shared 8-gram


def test_short_evaluation_rows_match_only_whole():
    assert ngram_matches(["how do i activate my new card today"], ["activate my new card"], n=8) == {0: (0, "activate my new card")}
    assert ngram_matches(["activate my card"], ["activate my new card"], n=8) == {}


def test_edit_matches_only_pair_rows_with_evaluation_rows():
    rows = ["where is my new card now", "where is my new card now please"]
    assert edit_matches(rows, ["where is my new crad now"]) == {0: 0}


@pytest.mark.slow
def test_cli_drops_copies_of_evaluation_rows_and_keeps_unrelated_ones(tmp_path, embed_cache):
    data = read_banking77()
    rng = random.Random(3)
    evals = [t for t, c in data if c == "card_arrival"][:40]
    unrelated = [t for t, c in data if c in ("exchange_rate", "pin_blocked", "top_up_failed")][:60]
    copies = evals[:5] + [e.upper() for e in evals[5:10]] + [light_edit(e, rng) for e in evals[10:15]]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps({"instruction": t}) + "\n" for t in evals))
    table = pl.DataFrame({"instruction": copies + unrelated, "source": ["generated"] * (len(copies) + len(unrelated))})
    table.write_parquet(tmp_path / "gen.parquet")

    proc = run_cli("curate", tmp_path / "gen.parquet", "--out", tmp_path / "clean.parquet", "--drops",
                   tmp_path / "drops.jsonl", "--against", tmp_path / "eval.jsonl", "--embed-cache", embed_cache,
                   "--threshold", "0.99", "--cache", tmp_path / "cache.sqlite")
    assert proc.returncode == 0, proc.stderr
    drops = pl.read_ndjson(tmp_path / "drops.jsonl")
    dropped = dict(zip(drops["instruction"], drops["reason"]))
    assert set(copies) <= set(dropped), set(copies) - set(dropped)
    assert all(dropped[c].startswith("contaminated_") for c in copies)
    kept = pl.read_parquet(tmp_path / "clean.parquet")["instruction"].to_list()
    assert set(unrelated) - set(dropped) == set(kept)
    # unrelated rows of other intents are kept (a few of them may still be duplicates of each other)
    assert not any(r.startswith("contaminated_") for t, r in dropped.items() if t in unrelated)
    assert "contaminated" in proc.stderr
