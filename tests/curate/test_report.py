"""The HTML report: one self-contained file with counts, plots, and dropped pairs side by side."""

import base64
import html as htmllib
import re

from curate.pipeline import curate_table
from curate.report import write_report
from seedloop.core.record import new_record, to_frame

TEXTS = ["How do I activate my new card?", "how do I activate my new card", "How can I activate my new card?",
         "Why was my card payment declined at the shop?", "What is the exchange rate for euros to dollars?",
         "I want to close my account and get my money back", "Where can I see my card PIN in the app?",
         "Can I top up my account with a cheque?"]


def test_report_is_self_contained_and_shows_pairs_side_by_side(tmp_path, embedder):
    df = to_frame([new_record(t, source="generated") for t in TEXTS])
    result = curate_table(df, embedder, threshold=0.9)
    assert dict(result.counts) == {"exact_duplicate": 1, "semantic_duplicate": 1}   # rows 1 and 2 copy row 0
    path = write_report(tmp_path / "r.html", result, TEXTS, title="t", settings=["threshold 0.9"])
    page = path.read_text()

    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pngs) == 3 and all(base64.b64decode(p).startswith(b"\x89PNG") for p in pngs)
    assert not re.search(r"""(src|href)=["']?https?:""", page)

    for reason, count in result.counts.items():   # the counts table says what the pipeline did
        assert re.search(rf"<td>{reason}</td><td class=\"n\">{count}</td>", page)
    rows = [htmllib.unescape(re.sub(r"<[^>]+>", "|", r)) for r in re.findall(r"<tr>.*?</tr>", page, re.S)]
    for d in result.drop_list:                     # each dropped row next to the row it duplicates
        kept_text = TEXTS[d.dup_row]
        assert any(TEXTS[d.row] in r and kept_text in r and f"{d.similarity:.3f}" in r for r in rows), d
