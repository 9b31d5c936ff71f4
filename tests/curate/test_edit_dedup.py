"""Near-exact dedup: which single edits join two rows, and which real differences keep them apart."""

import numpy as np
import pytest

from curate.edit_dedup import edit_duplicates
from curate.keep import keep_rank


def _dropped(texts):
    ids = [f"r{i}" for i in range(len(texts))]
    drops = edit_duplicates(texts, ids, keep_rank(["generated"] * len(texts)))
    return {d.row: (d.dup_of, d.detail) for d in drops}


@pytest.mark.parametrize("copy, detail", [
    ("Can I use my salray for this purchase?", "typo: 'salary' vs 'salray'"),
    ("Can I use my salary for this purchase please?", "one word added: 'please'"),
    ("Can I use my salary for purchase?", "one word dropped: 'this'"),
    ("Can I use salary my for this purchase?", "words swapped: 'my salary'"),
    ("can i use my SALARY for this purchase", "same words"),
])
def test_one_light_edit_is_a_duplicate_of_the_earlier_row(copy, detail):
    got = _dropped(["Can I use my salary for this purchase?", copy])
    assert got == {1: ("r0", detail)}


@pytest.mark.parametrize("other", [
    "Can I use my phone for this purchase?",          # a different word, not a typo
    "Can I not use my salary for this purchase?",     # a negation added
    "Can I use my salary for that purchase now?",     # two edits
    "Can I use my salary for this 2 purchase?",       # a number added
])
def test_real_differences_stay_apart(other):
    assert _dropped(["Can I use my salary for this purchase?", other]) == {}


def test_short_texts_are_left_to_other_steps():
    # "lost my card" vs "lost my cart": three tokens are too few to call one edit a copy
    assert _dropped(["lost my card", "lost my cart"]) == {}


def test_chains_form_one_group_and_keep_the_best_ranked_row():
    texts = ["please reset the card pin now", "please reset the card pin", "reset the card pin", "zebra"]
    ids = ["a", "b", "c", "d"]
    rank = keep_rank(["generated", "generated", "seed", "generated"])
    drops = {d.row: d for d in edit_duplicates(texts, ids, rank)}
    assert set(drops) == {0, 1}
    assert drops[0].dup_of == "c" and drops[1].dup_of == "c"   # the seed row is kept
    assert "one edit from a row" in drops[0].detail          # two words away: joined through b
    assert drops[1].detail == "one word added: 'please'"
