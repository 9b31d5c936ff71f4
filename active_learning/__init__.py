"""active_learning: the fine-tuned model scores an unlabeled pool; the least sure (and diverse) items go to annotators.

    select_from_pool(model_dir, pool, k, strategy="mnlp", labels=None, diversity=True,
                     pool_factor=3.0, max_new_tokens=48, seed=0, round=None, embedder=None,
                     progress=None) -> Selection(picks, scores)
        picks: k record rows, most useful first: `output` = the model's answer, scores.uncertainty
        and scores.strategy set, `round` = round (when given); scores: the same for every pool row.
    uncertainty   the strategies, from plain numbers (testable by hand)
    scoring       the numbers, from the model (batched greedy answers, token log-probs and entropies)
    batch         top-m uncertain, then k-center greedy on embeddings
    simulate      the pool-based simulation on Banking77 behind `seedloop simulate`

Nothing heavy is imported here: `import active_learning` does not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"select_from_pool": "active_learning.pool", "Selection": "active_learning.pool"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'active_learning' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
