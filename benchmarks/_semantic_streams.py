"""Query streams for the semantic-cache policy benchmarks and fits (not a benchmark itself).

A stream is a list of user queries, each with its "answer" (an intent label): banking77, the
Bitext support set, and banking77 ``test`` with an LLM's labels as the answer
(``distill/banking77_test_llm_labels.csv``, column ``gpt-label``, joined on the text).

Splits (tune on the first, report on the second):
- banking77: its own ``train`` / ``test`` files.
- support set (no split of its own): halves by a hash of the request text, sha256 first byte
  < 128 → ``fit`` (the "first half"), else ``test``; by hash, not by row order, because the
  file is sorted by intent and a row-order split would hold out whole intents.

``replay`` runs a stream through a threshold policy the way ``SemanticMatcher.find`` and
``SemanticLayer`` do: the nearest cached query that the guards pass decides (served, checked
against the model, or a miss), except that a hit the pair scorer doubts is passed over for the
next candidate; every query not served is cached with its own label.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from _semantic_data import data_file, embed_cached, load_banking77, load_qqp, load_support
from thrifty.semantic.agreement import NeighbourhoodAgreement
from thrifty.semantic.base import Guard, ThresholdPolicy
from thrifty.semantic.guards import Guards
from thrifty.semantic.pair_scorer import PairScorer

Stream = tuple[list[str], list[str], np.ndarray]
"""``(texts, labels, vectors)`` in file order."""


def support_half(text: str) -> str:
    """``fit`` or ``test``: the support set's fixed split by a hash of the text."""
    return "fit" if hashlib.sha256(text.encode("utf-8")).digest()[0] < 128 else "test"


def _stream(name: str, rows: list[tuple[str, str]]) -> Stream:
    texts = [t for t, _ in rows]
    return texts, [label for _, label in rows], embed_cached(name, texts)


def banking77(split: str) -> Stream:
    return _stream(f"banking77-{split}", load_banking77(split))


def support(half: str) -> Stream:
    rows = load_support()
    vecs = embed_cached("support", [t for t, _ in rows])  # one cache file for both halves
    keep = [i for i, (t, _) in enumerate(rows) if support_half(t) == half]
    return [rows[i][0] for i in keep], [rows[i][1] for i in keep], vecs[keep]


def banking77_llm() -> Stream:
    """banking77 ``test`` with the LLM's label (``gpt-label``) as each query's answer.

    ``gpt-label`` is read as GPT-4's label with the OCaTS prompt (83.1 % agreement with gold, the
    best of the three: what a cache of that teacher's answers would hold); by their names
    ``gpt4-label_nonrep`` (74.2 %) is GPT-4 given non-representative examples and
    ``gpt35-label_rep`` (75.2 %) GPT-3.5."""
    llm = {r["text"]: r["gpt-label"] for r in _llm_rows()}
    texts, _, vecs = banking77("test")
    keep = [i for i, t in enumerate(texts) if t in llm]
    return [texts[i] for i in keep], [llm[texts[i]] for i in keep], vecs[keep]


def _llm_rows() -> list[dict[str, str]]:
    with data_file("distill/banking77_test_llm_labels.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def second_opinion(stream: str) -> dict[str, str]:
    """Another annotator's label for each query of a banking77 ``test`` stream, in that stream's
    label space: GPT-4's (``gpt-label``) for the gold stream (``"banking77"``), the gold label
    for the GPT-4 stream (``"gpt-label"``). A hit whose served label the other annotator gives
    the query is one the two annotators dispute, not a plain mistake."""
    rows = _llm_rows()
    if stream == "gpt-label":
        return {r["text"]: r["label"] for r in rows}
    gold = dict(load_banking77("test"))
    name = {r["label"]: gold[r["text"]] for r in rows if r["text"] in gold}
    return {r["text"]: name.get(r["gpt-label"], "?" + r["gpt-label"]) for r in rows}


OUT_OF_SCOPE = "oos"


def with_out_of_scope(stream: Stream, n: int, split: str, *, distinct: bool = False) -> Stream:
    """``stream`` with ``n`` out-of-scope queries after it (the caller shuffles): half banking77
    queries (a bank's customers writing to a shop's support bot; ``train`` for ``split="dev"``,
    else ``test``), half QQP questions of ``split`` (anything else people ask). Each is labelled
    ``"oos"`` (the bot's one fallback answer) or, with ``distinct``, a label of its own (each
    answered differently: any hit on one is wrong)."""
    bank = load_banking77("train" if split == "dev" else "test")
    picked = [t for t, _ in random.Random(13).sample(bank, n // 2)]
    questions = list(dict.fromkeys(r["a"] for r in load_qqp(split)))
    picked += random.Random(14).sample(questions, n - n // 2)
    vecs = embed_cached(f"oos-{split}-{n}", picked)
    labels = [f"{OUT_OF_SCOPE}:{i}" if distinct else OUT_OF_SCOPE for i in range(n)]
    texts, own, own_vecs = stream
    return texts + picked, own + labels, np.concatenate([own_vecs, vecs])


def shuffled(stream: Stream, seed: int | None) -> Stream:
    """The stream in a seeded random order (None: file order, intent-sorted)."""
    texts, labels, vecs = stream
    if seed is None:
        return stream
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    return [texts[i] for i in order], [labels[i] for i in order], vecs[order]


# ------------------------------------------------------------------------------ the replay
@dataclass
class Replay:
    hits: int = 0
    wrong: int = 0
    checks: int = 0
    agreed: int = 0
    entries: int = 0
    queries: int = 0
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    served: list[tuple[int, int]] = field(default_factory=list)
    """Each hit as ``(query's position, served entry's position)`` in the replayed stream."""

    @property
    def hit_rate(self) -> float:
        return self.hits / max(self.queries, 1)

    @property
    def wrong_rate(self) -> float:
        return self.wrong / self.hits if self.hits else math.nan


def replay(
    stream: Stream,
    policy: ThresholdPolicy,
    *,
    guards: bool,
    scorer: PairScorer | None = None,
    k: int = 4,
    every: int = 100,
    link: bool = True,
    guard: Guard | None = None,
    agreement: NeighbourhoodAgreement | None = None,
    conflict_check: bool = True,
    same_answer: Callable[[int, int], bool | None] | None = None,
) -> Replay:
    """Run ``stream`` through ``policy`` as ``SemanticMatcher.find`` decides (guards, policy,
    then ``scorer`` on a hit); a check's outcome is whether the labels agree, and an agreeing
    check links the new entry to the checked one (``policy.link``) when ``link``. ``guard``
    replaces today's ``Guards()`` when ``guards`` is on (e.g. an older commit's guards).
    ``agreement``: neighbourhood agreement (``agreement.py``) over the guard-passed candidates,
    the same label being the same answer unless ``same_answer(i, j)`` (stream positions) says
    otherwise (free-text answers; None: no evidence either way); a hit it refuses in a conflict
    is checked when ``conflict_check`` (else handled like one the policy refused)."""
    texts, labels, vecs = stream
    guard = (guard or Guards()) if guards else None
    matrix = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
    cached: list[int] = []  # stream positions of the cached queries
    out = Replay(queries=len(texts))
    linker: Callable[[str, str], None] | None = getattr(policy, "link", None) if link else None
    for qi in range(len(texts)):
        n = len(cached)
        served = False
        checked: tuple[str, bool] | None = None
        if n:
            s = matrix[:n] @ vecs[qi]
            kk = k if agreement is None else max(k, agreement.k)
            top = np.argpartition(-s, kk - 1)[:kk] if n > kk else np.arange(n)
            order = top[np.argsort(-s[top])]
            if agreement is not None and guard is not None:  # the neighbourhood: guard-passed
                order = [c for c in order if guard.blocks(texts[qi], texts[cached[c]]) is None]
            for ci in order:
                other = texts[cached[ci]]
                unguarded = agreement is None and guard is not None
                if unguarded and guard.blocks(texts[qi], other) is not None:
                    continue
                key, sim = str(ci), float(s[ci])
                right = labels[cached[ci]] == labels[qi]
                own = policy.should_hit(key, sim)
                hit, refused = own, False
                if agreement is not None:
                    mine = labels[cached[ci]]
                    near = [
                        (
                            float(s[c]),
                            labels[cached[c]] == mine
                            if same_answer is None
                            else same_answer(cached[ci], cached[c]),
                        )
                        for c in order
                        if c != ci
                    ]
                    hit = agreement.serves(agreement.region(sim, near), sim, own)
                    refused = own and not hit and conflict_check
                trusted = not hit or scorer is None or scorer.accepts(texts[qi], other, sim)
                verify = own and policy.wants_verification(key, sim)
                if hit and trusted and not verify:
                    served = True
                    out.hits += 1
                    out.wrong += not right
                    out.served.append((qi, cached[ci]))
                    break
                if (hit and trusted) or refused or policy.wants_verification(key, sim):
                    out.checks += 1  # a near miss explored, or a sampled re-check of a hit
                    out.agreed += right
                    policy.record(key, sim, right)
                    checked = (key, right)
                    break
                if not trusted:
                    continue  # the scorer doubts this hit: the next candidate may answer
                break
        if not served:
            matrix[n] = vecs[qi]
            cached.append(qi)
            if checked is not None and checked[1] and linker is not None:
                linker(str(n), checked[0])
        if (qi + 1) % every == 0 or qi + 1 == len(texts):
            rate = out.wrong / out.hits if out.hits else 0.0
            out.curve.append((qi + 1, out.hits / (qi + 1), rate))
    out.entries = len(cached)
    return out


def nearest_pairs(
    streams: Sequence[Stream],
    seeds: Sequence[int],
    *,
    guards: bool = True,
    scorer: PairScorer | None = None,
) -> list[tuple[str, float, bool]]:
    """Labelled pairs as a cache meets them: each query of each stream (in each seeded order)
    against its nearest earlier query that the guards (and ``scorer``, when given) pass, every
    query cached. Returns ``(cached entry id, cosine, same label?)`` for fitting the bar and the
    prior. With ``scorer`` these are the pairs a fixed bar serves: ``find`` skips a candidate
    the scorer doubts and serves the next one if its cosine clears the bar."""
    guard = Guards() if guards else None
    pairs = []
    for si, (texts, labels, vecs) in enumerate(streams):
        for seed in seeds:
            order = list(range(len(texts)))
            random.Random(seed).shuffle(order)
            v = vecs[order]
            for pos in range(1, len(order)):
                s = v[:pos] @ v[pos]
                top = np.argsort(-s)[:4]
                q = order[pos]
                for j in top:
                    c = order[int(j)]
                    if guard is not None and guard.blocks(texts[q], texts[c]) is not None:
                        continue
                    if scorer is not None and not scorer.accepts(texts[q], texts[c], float(s[j])):
                        continue
                    pairs.append((f"{si}:{seed}:{c}", float(s[j]), labels[c] == labels[q]))
                    break
    return pairs
