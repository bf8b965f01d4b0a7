"""The ``text_similarity`` metrics, each a small pure function returning a score in [0, 1].

- fuzzy_match: normalised Indel similarity ``2·LCS / (len a + len b)`` over characters (the measure
  of rapidfuzz's ``fuzz.ratio`` / 100).
- bleu: sentence BLEU-4 over whitespace tokens, uniform weights, brevity penalty, *effective order*
  (orders longer than the hypothesis are skipped, as sacreBLEU's sentence BLEU does) and ε = 0.1
  smoothing of zero precisions (Chen & Cherry's method 1).
- gleu: Google-BLEU, ``min(precision, recall)`` of all 1–4-grams together.
- rouge_n: F1 of clipped n-gram overlap; rouge_l: F1 of the longest common token subsequence.
  ROUGE tokens follow rouge-score: lower-case, runs of [a-z0-9].
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Sequence

METRICS = (
    "fuzzy_match", "bleu", "gleu",
    "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l",
)
_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def _lcs(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def fuzzy_match(hyp: str, ref: str) -> float:
    if not hyp and not ref:
        return 1.0
    return 2.0 * _lcs(hyp, ref) / (len(hyp) + len(ref))


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(hyp: str, ref: str, max_n: int = 4, epsilon: float = 0.1) -> float:
    h, r = hyp.split(), ref.split()
    if not h or not r:
        return 0.0
    order = min(max_n, len(h))
    log_p = 0.0
    for n in range(1, order + 1):
        hyp_ngrams = _ngrams(h, n)
        overlap = sum((hyp_ngrams & _ngrams(r, n)).values())
        total = sum(hyp_ngrams.values())
        log_p += math.log(overlap / total if overlap else epsilon / total)
    bp = 1.0 if len(h) > len(r) else math.exp(1.0 - len(r) / len(h))
    return bp * math.exp(log_p / order)


def gleu(hyp: str, ref: str, max_n: int = 4) -> float:
    h, r = hyp.split(), ref.split()
    hyp_ngrams: Counter[tuple[str, ...]] = Counter()
    ref_ngrams: Counter[tuple[str, ...]] = Counter()
    for n in range(1, max_n + 1):
        hyp_ngrams += _ngrams(h, n)
        ref_ngrams += _ngrams(r, n)
    if not hyp_ngrams or not ref_ngrams:
        return 0.0
    overlap = sum((hyp_ngrams & ref_ngrams).values())
    return min(overlap / sum(hyp_ngrams.values()), overlap / sum(ref_ngrams.values()))


def _f1(overlap: int, n_hyp: int, n_ref: int) -> float:
    if overlap == 0:
        return 0.0
    p, r = overlap / n_hyp, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge_n(hyp: str, ref: str, n: int) -> float:
    h, r = _ngrams(_ROUGE_TOKEN.findall(hyp.lower()), n), _ngrams(_ROUGE_TOKEN.findall(ref.lower()), n)
    return _f1(sum((h & r).values()), sum(h.values()), sum(r.values()))


def rouge_l(hyp: str, ref: str) -> float:
    h, r = _ROUGE_TOKEN.findall(hyp.lower()), _ROUGE_TOKEN.findall(ref.lower())
    return _f1(_lcs(h, r), len(h), len(r))


def similarity(metric: str, hyp: str, ref: str) -> float:
    if metric == "fuzzy_match":
        return fuzzy_match(hyp, ref)
    if metric == "bleu":
        return bleu(hyp, ref)
    if metric == "gleu":
        return gleu(hyp, ref)
    if metric == "rouge_l":
        return rouge_l(hyp, ref)
    return rouge_n(hyp, ref, int(metric.rsplit("_", 1)[1]))
