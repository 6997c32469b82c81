"""Question in, passages out: the one retrieval step shared by training data, evaluation, chat and serving.

Entity matching runs first (make / model / year / trim, with aliases and typo tolerance);
right after the named vehicles come the passages computed for the question from their rows
(a comparison's differences, a fuel cost: ``carexpert.knowledge.derived``), because a small
model copies figures well and does arithmetic badly; then full-text ranking (SQLite FTS5,
bm25) fills the remaining places. The passages go
into the prompt through ``carexpert.prompt.render_prompt(..., context=retrieval.texts())``.

When a question names a make and model that the store does not know, ``Retrieval.unknown``
says so and ``Retrieval.refusal`` holds the guard's answer: the same words the model is
trained to give when no passage holds the figure (``guard_refusal``).

Import everything retrieval-related from here (``Passage``, ``Hit``, ``Retrieval``,
``Retriever``, ``open_retriever``, ``guard_refusal``); the store behind it lives in
``carexpert.knowledge.store``. ``Passage`` is defined with the other knowledge types
(``carexpert.knowledge.types``) because the store builds passages and retrieval ranks them:
this module depends on the store, never the other way round.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from carexpert.knowledge.derived import derived_passages
from carexpert.knowledge.entities import EntityIndex, Named
from carexpert.knowledge.loading import load_knowledge
from carexpert.knowledge.passages import LINK_WORDS, budget_answer_passage
from carexpert.knowledge.store import KnowledgeStore, build_store, needs_build, store_path
from carexpert.knowledge.types import Passage

__all__ = ["Hit", "Passage", "Retrieval", "Retriever", "UnknownVehicle", "guard_refusal", "open_retriever"]


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    how: str  # "entity" (named in the question), "computed" (a derived passage) or "text" (full-text rank)


@dataclass(frozen=True)
class UnknownVehicle:
    """A make and model the question names that the store does not hold."""

    named: str                          # as the question wrote it, e.g. "2024 Toyota Zephyr"
    suggestions: tuple[Passage, ...]    # the closest real vehicles the store does have


@dataclass(frozen=True)
class Retrieval:
    question: str
    hits: tuple[Hit, ...]
    unknown: UnknownVehicle | None = None

    @property
    def passages(self) -> tuple[Passage, ...]:
        return tuple(hit.passage for hit in self.hits)

    def texts(self) -> list[str]:
        """The passage texts, best first, for ``render_prompt(context=...)``."""
        return [hit.passage.text for hit in self.hits]

    @property
    def refusal(self) -> str | None:
        """The guard's answer when the question names an unknown make and model, else None."""
        return guard_refusal(self.unknown.named, self.unknown.suggestions) if self.unknown else None


def guard_refusal(named: str, suggestions: Sequence[Passage] = ()) -> str:
    """The answer when no passage holds the vehicle asked about (the guard's words and the training target)."""
    text = f"I have no record of the {named} in my data, so I don't have verified figures for it and won't guess."
    names = [p.title for p in suggestions if p.kind == "vehicle"][:2]
    if len(names) == 2:
        text += f" The closest models I do have are the {names[0]} and the {names[1]}."
    elif names:
        text += f" The closest model I do have is the {names[0]}."
    return text


# Words that carry no meaning for full-text ranking (kept out of the FTS query).
_QUERY_STOPWORDS = frozenset(["a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from", "get", "got", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "more", "most", "my", "no", "not", "of", "on", "or", "our", "out", "so", "some", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "too", "up", "us", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "why", "will", "with", "would", "you", "your", "yours", "hey", "hi", "please", "thanks", "tell", "explain", "give", "name", "list", "quick", "simple", "question", "settle", "something", "briefly", "new", "one", "cars", "car", "vehicle", "vehicles", "model", "should", "next", "really", "need", "know", "usual"])
_TITLE_FILLER = frozenset({"a", "an", "the", "vs", "of", "for", "in", "and", "to"})
_WORD = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")
_MONEY = re.compile(r"\$\s?(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(k\b|thousand)?", re.IGNORECASE)
ENTITY_SCORE = 1000.0  # named things rank above every full-text hit
FTS_POOL = 12          # extra full-text candidates re-ranked with the bonuses below
LINK_BONUS = 20.0      # a concept that explains a named vehicle's gearbox, drivetrain or powertrain
TITLE_BONUS = 10.0     # times the share of the title's words (rarer words weigh more) the question uses
COMPARE_BONUS = 5.0    # an 'A vs B' passage when the question names every item it compares
SYNONYMS = {"ev": "electric", "evs": "electric", "stick": "manual", "regen": "regenerative", "4x4": "four-wheel",
            "gas": "gasoline", "afford": "budget", "lease": "leasing", "mpg": "fuel"}
TokenCounter = Callable[[str], int]


def _title_in(title: str, lowered_question: str) -> bool:
    """The question spells out the title ('manual transmission'), or every item of an 'A vs B' title."""
    items = [" ".join(_WORD.findall(re.sub(r"^(a|an|the) ", "", part.strip().lower()))) for part in title.split(" vs ")]
    return all(item and f" {item} " in lowered_question for item in items)


def estimate_tokens(text: str) -> int:
    """About one token per four characters: the fallback when no tokenizer is given."""
    return max(1, (len(text) + 3) // 4)


class Retriever:
    """Question in, passages out: named vehicles first (entity matching), then bm25 full-text hits.

    Cheap to call from any thread; the entity index over the store's vehicles is built once,
    when the retriever is made.
    """

    def __init__(self, store: KnowledgeStore, *, top_k: int = 3, max_context_tokens: int = 384,
                 min_score: float = 0.0, count_tokens: TokenCounter | None = None):
        self.store = store
        self.top_k = top_k
        self.max_context_tokens = max_context_tokens
        self.min_score = min_score
        self.count_tokens = count_tokens or estimate_tokens
        self.index: EntityIndex = EntityIndex(store.vehicle_keys(), store.words())
        knowledge = load_knowledge()
        self._segments = dict(knowledge.segments)
        self._tiers = knowledge.budget_tiers
        self._assumptions = dict(knowledge.assumptions)
        self._lock = threading.Lock()
        titles = [set(_WORD.findall(t.lower())) for t in store.topic_titles()]
        self._title_weight = {w: math.log(1 + len(titles) / sum(w in t for t in titles))
                              for w in set().union(*titles)} if titles else {}

    def passage(self, passage_id: str) -> Passage | None:
        """A stored passage by id or fact id ('toyota-camry-2024-le', 'vehicle:...', 'concept:turbocharger')."""
        return self.store.passage(passage_id)

    def retrieve(self, question: str, k: int | None = None) -> Retrieval:
        """The best ``k`` passages (default ``top_k``) that fit ``max_context_tokens``, best first."""
        k = self.top_k if k is None else k
        if k <= 0 or not question.strip():
            return Retrieval(question, ())
        match = self.index.match(question)
        hits: list[Hit] = []
        named = sorted(match.vehicles, key=lambda n: n.position)
        found = self.store.passages(n.key.id for n in named)
        for rank, entry in enumerate(named):
            passage = found.get(entry.key.id)
            if passage is not None:
                hits.append(Hit(passage, ENTITY_SCORE + entry.score - rank, "entity"))
        budget = None if named else self._budget_passage(question)
        if budget is not None:
            hits.append(Hit(budget, ENTITY_SCORE, "entity"))
        hits += [Hit(passage, ENTITY_SCORE, "computed") for passage in self._derived(question, named)]
        unknown = None
        if match.unknown is not None:
            keys = self.index.suggestions(match.unknown)
            suggestions = self.store.passages(key.id for key in keys)
            unknown = UnknownVehicle(match.unknown.text, tuple(suggestions[key.id] for key in keys
                                                               if key.id in suggestions))
        if len(hits) < k:
            hits += self._text_hits(question, named, {h.passage.id for h in hits}, k - len(hits))
        if len(hits) < k and not named and unknown is None:  # a question about no named car: vehicle rows too
            seen = {h.passage.id for h in hits}
            for passage, score in self.store.search(self._query_terms(question), k - len(hits), vehicles=True):
                if passage.id not in seen and score >= self.min_score:
                    hits.append(Hit(passage, score, "text"))
        return Retrieval(question, self._fit(hits[:k]), unknown)

    def _derived(self, question: str, named: list[Named]) -> list[Passage]:
        """Passages computed for the question from the named vehicles' rows, one vehicle per mention (of an
        ambiguous name, "Ioniq", the best match), in the order the question names them."""
        first: dict[int, str] = {}
        for entry in named:
            first.setdefault(entry.position, entry.key.id)
        if not first:
            return []
        rows = {v.id: v for v in self.store.vehicles(first.values())}
        vehicles = [rows[i] for i in first.values() if i in rows]
        return derived_passages(question, vehicles, self._assumptions)

    def _text_hits(self, question: str, named: list, seen: set[str], wanted: int) -> list[Hit]:
        """bm25 over the topic passages, re-ranked: a concept that explains the aspect asked about of a named
        vehicle ('what gearbox does the Outback have?' -> CVT) first, then passages whose title the question spells out."""
        words = _WORD.findall(question.lower())
        asked = {aspect for aspect, vocabulary in LINK_WORDS.items() if vocabulary.intersection(words)}
        linked = {pid for aspect, pid in self.store.links(n.key.id for n in named) if aspect in asked}
        lowered = " " + " ".join(words) + " "
        scores: dict[str, float] = {}
        found: dict[str, Passage] = {}
        for passage, score in self.store.search(self._query_terms(question), wanted + len(seen) + FTS_POOL):
            if passage.id in seen or score < self.min_score:
                continue
            score += TITLE_BONUS * self._title_share(passage.title, set(words))
            if " vs " in passage.title and _title_in(passage.title, lowered):
                score += COMPARE_BONUS
            scores[passage.id], found[passage.id] = score, passage
        for pid, passage in self.store.passages(linked - seen).items():
            scores[pid] = scores.get(pid, 0.0) + LINK_BONUS
            found[pid] = passage
        best = sorted(scores, key=lambda pid: -scores[pid])[:wanted]
        return [Hit(found[pid], scores[pid], "text") for pid in best]

    def _fit(self, hits: list[Hit]) -> tuple[Hit, ...]:
        """Keep hits in rank order while they fit the token budget (the best one always stays)."""
        kept: list[Hit] = []
        used = 0
        for hit in hits:
            tokens = self.count_tokens(hit.passage.text)
            if kept and used + tokens > self.max_context_tokens:
                continue
            kept.append(hit)
            used += tokens
        return tuple(kept)

    @staticmethod
    def _query_terms(question: str) -> list[str]:
        words = [w for w in _WORD.findall(question.lower()) if w not in _QUERY_STOPWORDS and len(w) > 1]
        return list(dict.fromkeys(words + [SYNONYMS[w] for w in words if w in SYNONYMS]))

    def _title_share(self, title: str, question_words: set[str]) -> float:
        """How much of the title the question uses, each title word weighted by its rarity among titles."""
        words = [w for w in _WORD.findall(title.lower()) if w not in _TITLE_FILLER]
        total = sum(self._title_weight.get(w, 1.0) for w in words)
        used = sum(self._title_weight.get(w, 1.0) for w in words
                   if w in question_words or w + "s" in question_words or w.rstrip("s") in question_words)
        return used / total if total else 0.0

    def _budget_passage(self, question: str) -> Passage | None:
        """For 'What's a good compact SUV under $30,000?': the tier's advice and the store's cars at or under it."""
        money = _MONEY.search(question)
        if not money or re.search(r"gallon|per year|a year|kwh|mile", question, re.IGNORECASE):
            return None
        amount = float(money.group(1).replace(",", ""))
        if money.group(2):
            amount *= 1000
        if amount < 5000:
            return None
        budget = int(amount)
        lowered = question.lower()
        segment = None
        for key, label in sorted(self._segments.items(), key=lambda item: -len(item[1])):
            if label.lower() in lowered or label.lower().rstrip("e") + "s" in lowered:
                segment = key
                break
        tier = next((t for t in self._tiers if budget <= t.max_usd), self._tiers[-1])
        picks = self.store.priced_vehicles(budget, segment, limit=4 if segment else len(self._segments))
        if segment is None:  # the priciest that fits of every segment: the list the generator's budget answers pick from
            picks.sort(key=lambda v: v.msrp_usd or 0)
        return budget_answer_passage(tier, budget, self._segments.get(segment) if segment else None, picks,
                                     self._segments)


def open_retriever(config, *, count_tokens: TokenCounter | None = None) -> Retriever:
    """The retriever for a config: builds the store first when it is missing or the builtin tables changed."""
    path: Path = store_path(config)
    if needs_build(path):
        build_store(path)
    retrieval = config.retrieval
    return Retriever(KnowledgeStore(path), top_k=retrieval.top_k, max_context_tokens=retrieval.max_context_tokens,
                     min_score=retrieval.min_score, count_tokens=count_tokens)
