"""`--report report.html`: one self-contained file (plots inlined as base64 PNG) showing what was
kept, what was dropped and why, and the closest dropped pairs side by side."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Sequence

import jinja2
import numpy as np

from curate import plots
from curate.pipeline import CurateResult
from seedloop.core.atomic import write_text

PAIRS_PER_REASON = 15
KEPT_SAMPLE = 25

_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>seedloop curate: {{ title }}</title>
<style>
 body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #212529; }
 h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #dee2e6; }
 table { border-collapse: collapse; margin: .5em 0; width: 100%; }
 td, th { border: 1px solid #dee2e6; padding: 4px 8px; vertical-align: top; text-align: left; }
 th { background: #f1f3f5; } td.n { text-align: right; font-variant-numeric: tabular-nums; width: 7em; }
 .pairs td { width: 40%; white-space: pre-wrap; } .pairs td.n { width: 6em; white-space: nowrap; }
 .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; } img { max-width: 100%; }
 .muted { color: #868e96; }
</style></head><body>
<h1>seedloop curate: {{ title }}</h1>
<p class="muted">{{ generated }}. {{ settings | join(" · ") }}</p>
<p><b>{{ kept }}</b> of <b>{{ total }}</b> rows kept ({{ "%.1f" | format(100 * kept / total if total else 0) }}%).</p>

<h2>Counts per step</h2>
<table><tr><th>step</th><th>rows in</th><th>rows out</th><th>dropped</th></tr>
{% for name, rin, rout in steps %}<tr><td>{{ name }}</td><td class="n">{{ rin }}</td><td class="n">{{ rout }}</td>
<td class="n">{{ rin - rout }}</td></tr>{% endfor %}</table>
<table><tr><th>drop reason</th><th>rows</th></tr>
{% for reason, n in counts %}<tr><td>{{ reason }}</td><td class="n">{{ n }}</td></tr>{% else %}
<tr><td colspan="2">nothing dropped</td></tr>{% endfor %}</table>

<h2>Plots</h2>
<div class="grid">
{% for caption, png in figures %}<figure><img alt="{{ caption }}" src="data:image/png;base64,{{ png }}">
<figcaption class="muted">{{ caption }}</figcaption></figure>{% endfor %}
</div>
<table><tr><th>threshold</th>{% for t, f in curve %}<td class="n">{{ "%.2f" | format(t) }}</td>{% endfor %}</tr>
<tr><th>% removed</th>{% for t, f in curve %}<td class="n">{{ "%.1f" | format(100 * f) }}</td>{% endfor %}</tr></table>

{% for title, pairs in pair_tables %}
<h2>{{ title }}</h2>
<table class="pairs"><tr><th>dropped row</th><th>{{ pairs.other }}</th><th>similarity</th><th>why</th></tr>
{% for p in pairs.rows %}<tr><td>{{ p.text }}</td><td>{{ p.other }}</td><td class="n">{{ p.sim }}</td>
<td>{{ p.detail }}</td></tr>{% endfor %}</table>
{% endfor %}

<h2>Kept rows (first {{ kept_rows | length }})</h2>
<table class="pairs"><tr><th>text</th><th>judge</th><th>nearest other row</th></tr>
{% for k in kept_rows %}<tr><td>{{ k.text }}</td><td class="n">{{ k.score }}</td><td class="n">{{ k.nearest }}</td></tr>
{% endfor %}</table>
</body></html>
""")


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _pair_tables(result: CurateResult, texts: Sequence[str], eval_text: dict[str, str]) -> list:
    by_reason: dict[str, list] = {}
    for d in result.drop_list:
        by_reason.setdefault(d.reason, []).append(d)
    tables = []
    for reason, drops in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        dup = any(d.dup_of is not None for d in drops)
        if dup:   # the closest first: these are the pairs to check the threshold against
            drops = sorted(drops, key=lambda d: -(d.similarity if d.similarity is not None else -1))
        rows = [_pair(d, texts, eval_text) for d in drops[:PAIRS_PER_REASON]]
        other_name = "evaluation row" if reason.startswith("contaminated") else "kept row it duplicates"
        tables.append((f"{reason} ({len(drops)}): {'closest pairs' if dup else 'examples'}",
                       {"other": other_name if dup else "", "rows": rows}))
        if reason == "semantic_duplicate" and len(drops) > PAIRS_PER_REASON:
            # the pairs a threshold decision hinges on: the least similar ones it still dropped
            tables.append((f"{reason}: borderline pairs (least similar of those dropped)",
                           {"other": other_name, "rows": [_pair(d, texts, eval_text)
                                                          for d in drops[-PAIRS_PER_REASON:][::-1]]}))
    return tables


def _pair(d, texts: Sequence[str], eval_text: dict[str, str]) -> dict:
    other = texts[d.dup_row] if d.dup_row is not None else eval_text.get(d.dup_of or "", "")
    return {"text": texts[d.row], "other": other, "detail": d.detail or "",
            "sim": "" if d.similarity is None else f"{d.similarity:.3f}"}


def write_report(path: str | Path, result: CurateResult, texts: Sequence[str], *, title: str,
                 settings: Sequence[str] = (), eval_text: dict[str, str] | None = None,
                 min_score: float | None = None) -> Path:
    """Write the HTML report atomically; `texts` are the rows' compared texts in table order."""
    outcome = {d.row: d.reason for d in result.drop_list}
    figures = []
    nearest = result.nearest
    if len(nearest) and not np.isnan(nearest).all():
        figures.append(("Nearest-neighbour similarity of the rows semantic dedup saw",
                        _b64(plots.similarity_histogram(nearest, result.threshold))))
        figures.append(("Fraction removed vs threshold (one pass, read off the same graph)",
                        _b64(plots.threshold_curve(result.curve, result.threshold))))
    if len(result.embedded_rows) >= 3:
        labels = [outcome.get(int(r), "kept") for r in result.embedded_rows]
        figures.append(("2-D map of the embeddings (PCA), coloured by outcome",
                        _b64(plots.embedding_map(result.embeddings, labels))))
    if result.verdicts is not None:
        figures.append((f"Judge scores ({result.verdicts.unparseable} answers had no score)",
                        _b64(plots.score_histogram(result.verdicts.scores, min_score))))
    near_of = {int(r): float(v) for r, v in zip(result.semantic_rows, result.nearest) if not np.isnan(v)}
    kept_rows = []
    for i in range(len(texts)):
        if i not in outcome and len(kept_rows) < KEPT_SAMPLE:
            score = result.verdicts.scores[i] if result.verdicts else None
            kept_rows.append({"text": texts[i], "score": "" if score is None else f"{score:g}",
                              "nearest": "" if near_of.get(i) is None else f"{near_of[i]:.3f}"})
    html = _TEMPLATE.render(
        title=title, generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"), settings=list(settings),
        kept=result.kept.height, total=result.kept.height + result.drops.height, steps=result.steps,
        counts=result.counts.most_common(), figures=figures, curve=result.curve,
        pair_tables=_pair_tables(result, texts, eval_text or {}), kept_rows=kept_rows)
    write_text(path, html)
    return Path(path)
