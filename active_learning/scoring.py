"""Scoring a pool with the fine-tuned model: the numbers each uncertainty strategy needs.

One pass per strategy family, batched:
  mnlp, entropy    greedy answers with each token's log-probability and the entropy of each step's
                   next-token distribution, both from the logits generation already computes
  label_entropy, margin
                   the sequence log-probability of every label option, the prompt run once per item
                   and its key/value cache shared by the options (train.inference.score_options);
                   the answer is the most likely label
  disagreement     n sampled answers per item (plus the greedy answer, which is what gets prefilled)
  random           a seeded uniform draw; answers only for what is picked (see select.py)

A classifier student (train.load_classifier) needs one forward pass per item for all of these: its
softmax over the labels is exact, so label_entropy and entropy are the normalized entropy of it,
margin is 1 - (p1 - p2), mnlp is -log p1 (the MNLP of a one-token answer: least confidence), and the
answer is the most likely label. Sampling disagreement has no meaning there and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from active_learning import uncertainty as U
from seedloop.core.errors import ConfigError


@dataclass
class PoolScores:
    strategy: str
    uncertainty: np.ndarray          # one per item, higher = less sure
    answers: list[str | None]        # the model's answer per item (None where not computed)
    generated_tokens: int = 0


def check_strategy(strategy: str, labels: list[str] | None) -> None:
    if strategy not in U.STRATEGIES:
        raise ConfigError(f"unknown strategy '{strategy}': expected one of {', '.join(U.STRATEGIES)}")
    if strategy in U.LABEL_SET and not labels:
        raise ConfigError(f"strategy '{strategy}' needs the label set: pass --labels a,b,c (or --labels-from FIELD)")
    if labels is not None and len(set(labels)) < 2:
        raise ConfigError(f"--labels needs at least two different labels, got {labels}")


def score_pool(model, tokenizer, records: list[dict], strategy: str, *, labels: list[str] | None = None,
               max_new_tokens: int = 48, batch_size: int = 8, samples: int = 5, temperature: float = 1.0,
               seed: int = 0, progress: Callable[[int], None] | None = None) -> PoolScores:
    """Uncertainty of every record under `strategy`; `progress(done)` counts records."""
    from train import answer, sample_answers, score_options

    check_strategy(strategy, labels)
    if strategy == "random":
        return PoolScores(strategy, np.random.default_rng(seed).random(len(records)), [None] * len(records))
    if strategy in U.LABEL_SET:
        option_lp = score_options(model, tokenizer, records, labels, batch_size=batch_size, progress=progress)
        score = U.label_entropy if strategy == "label_entropy" else U.margin
        return PoolScores(strategy, score(option_lp), [labels[i] for i in option_lp.argmax(axis=1)])
    greedy = answer(model, tokenizer, records, max_new_tokens=max_new_tokens, batch_size=batch_size,
                    progress=None if strategy == "disagreement" else progress)
    tokens = sum(len(a.token_ids) for a in greedy)
    if strategy == "mnlp":
        values = [U.mnlp(a.token_logprobs) for a in greedy]
    elif strategy == "entropy":
        values = [U.mean_entropy(a.token_entropies) for a in greedy]
    else:
        sampled = sample_answers(model, tokenizer, records, n=samples, temperature=temperature,
                                 max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
        values = [U.disagreement(s) for s in sampled]
        if progress:
            progress(len(records))
    return PoolScores(strategy, np.array(values, dtype=float), [a.text for a in greedy], tokens)


def score_classifier(clf, records: list[dict], strategy: str, *, batch_size: int = 64, seed: int = 0,
                     progress: Callable[[int], None] | None = None) -> PoolScores:
    """Uncertainty of every record under `strategy`, from a classifier's label probabilities."""
    from train import classifier_text

    if strategy not in U.STRATEGIES:
        raise ConfigError(f"unknown strategy '{strategy}': expected one of {', '.join(U.STRATEGIES)}")
    if strategy == "disagreement":
        raise ConfigError("strategy 'disagreement' samples generated answers; a classifier has exact label "
                          "probabilities: use margin, label_entropy or mnlp")
    probs = clf.predict_proba([classifier_text(r) for r in records], batch_size=batch_size, progress=progress)
    logp = np.log(np.clip(probs, 1e-30, None))
    answers = [clf.labels[i] for i in probs.argmax(axis=1)]
    if strategy == "random":
        values = np.random.default_rng(seed).random(len(records))
    elif strategy == "margin":
        values = U.margin(logp)
    elif strategy == "mnlp":
        values = -logp.max(axis=1)
    else:   # entropy, label_entropy
        values = U.label_entropy(logp)
    return PoolScores(strategy, np.asarray(values, dtype=float), answers)
