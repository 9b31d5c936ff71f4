"""How unsure a model is about one item, from what scoring measured. Higher = less sure.

Every function takes plain numbers (log-probabilities, entropies, option scores, sampled answers),
so each is checkable by hand; `active_learning.scoring` gets those numbers from the model.

  mnlp        -(1/T) sum log p(y_t) over the greedy answer's T tokens: the negated maximum
              normalized log-probability (Shen et al., 2017), so long answers are not penalized.
  entropy     (1/T) sum H(p_t): the mean entropy of the next-token distributions along the answer.
  label_entropy, margin
              for a known label set: the options' sequence log-probabilities, normalized over the
              set, give p; entropy is H(p) / log K (0 sure, 1 uniform), margin is 1 - (p1 - p2).
  disagreement
              n sampled answers: 1 - (count of the most common one) / n, the variation ratio.
  random      a uniform draw, the baseline.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

GENERATIVE = ("mnlp", "entropy", "disagreement")
LABEL_SET = ("label_entropy", "margin")
STRATEGIES = (*GENERATIVE, *LABEL_SET, "random")


def mnlp(token_logprobs: Sequence[float]) -> float:
    if len(token_logprobs) == 0:
        return float("inf")  # no answer at all: as unsure as it gets
    return -float(np.mean(token_logprobs))


def mean_entropy(token_entropies: Sequence[float]) -> float:
    if len(token_entropies) == 0:
        return float("inf")
    return float(np.mean(token_entropies))


def option_probs(option_logprobs: np.ndarray) -> np.ndarray:
    """(items x options) sequence log-probabilities -> probabilities normalized over the options."""
    z = option_logprobs - option_logprobs.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def label_entropy(option_logprobs: np.ndarray) -> np.ndarray:
    p = option_probs(option_logprobs)
    k = p.shape[1]
    if k < 2:
        return np.zeros(len(p))
    h = -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=1)
    return h / np.log(k)


def margin(option_logprobs: np.ndarray) -> np.ndarray:
    p = np.sort(option_probs(option_logprobs), axis=1)
    if p.shape[1] < 2:
        return np.zeros(len(p))
    return 1.0 - (p[:, -1] - p[:, -2])


def disagreement(answers: Sequence[str]) -> float:
    if not answers:
        return 1.0
    norm = [" ".join(a.split()).lower() for a in answers]
    return 1.0 - Counter(norm).most_common(1)[0][1] / len(norm)
