"""Which vehicles a question names: make / model / year / trim, with aliases and typo tolerance.

Full-text ranking cannot tell "2024 Camry LE" from "2024 Camry Hybrid LE", and a model
must read the passage of the car it was asked about, so named vehicles are found first,
here, by exact look-ups on normalized names ("F-150" = "F150" = "f 150", "MX-5" = "Miata")
with rapidfuzz for typos ("Camery"). The same pass spots a make and model the store does
not know ("2024 Toyota Zephyr GT", "Veltron Aero GT"): the guard refuses those instead of
letting the model invent figures. Built once per retriever from the store's vehicle rows.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-./'’][A-Za-z0-9]+)*")
YEAR = re.compile(r"^(19[5-9]\d|20[0-4]\d)$")
# Nicknames people use for makes, as compact (lower-case, no punctuation) strings.
MAKE_ALIASES = {"chevy": "chevrolet", "vw": "volkswagen", "merc": "mercedesbenz", "mercedes": "mercedesbenz",
                "benz": "mercedesbenz", "caddy": "cadillac", "bimmer": "bmw", "beemer": "bmw"}
# Nicknames for models (compact alias -> compact model name), applied when that model is in the store.
MODEL_ALIASES = {"vette": "corvette", "stingray": "corvette", "miata": "mx5miata", "mx5": "mx5miata",
                 "mache": "mustangmache", "supra": "grsupra", "typer": "civictyper", "gti": "golfgti",
                 "lightning": "f150lightning"}
# Words that occur in model names but do not name a model on their own.
GENERIC = {"hybrid", "plug", "plugin", "prime", "ev", "euv", "electric", "type", "model", "grand", "sport", "base",
           "limited", "new", "the", "series", "class", "one", "gr", "long", "range", "standard", "classic", "select",
           "pro", "lightning", "golf", "cooper", "max", "plus", "x", "s", "e", "r"}
# Capitalized words that are never the start of a made-up vehicle name (question openers and the like).
STOPWORDS = frozenset(["a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "let", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "hey", "hi", "hello", "please", "thanks", "thank", "ok", "okay", "quick", "simple", "question", "tell", "explain", "give", "name", "list", "compare", "recommend", "suggest", "estimate", "settle", "help", "need", "want", "know", "think", "best", "better", "good", "bad", "worth", "vs", "versus", "yes", "yeah", "sure", "i'm", "i've", "i'd", "what's", "how's", "it's", "that's", "there's", "don't", "doesn't", "isn't", "aren't", "can't", "won't"])
# Words for kinds of vehicle: "a 2023 Toyota SUV" names no model.
VEHICLE_WORDS = {"suv", "suvs", "sedan", "sedans", "truck", "trucks", "pickup", "pickups", "hybrid", "hybrids", "ev",
                 "evs", "car", "cars", "model", "models", "lineup", "crossover", "crossovers", "minivan", "minivans",
                 "coupe", "wagon", "hatchback", "convertible", "van", "vans", "vehicle", "vehicles", "dealer",
                 "dealership", "warranty", "engine", "engines", "electric", "plug-in", "phev", "awd", "4wd", "or", "and"}
# A capitalized name with neither a known make nor a model year counts as a vehicle only in a question
# about vehicle things ("the torque of the Veltron Aero GT"), not "the Bridgestone Blizzak in snow".
VEHICLE_QUESTION_WORDS = {"hp", "horsepower", "power", "powerful", "torque", "spec", "specs", "specifications", "price",
                          "priced", "cost", "costs", "msrp", "060", "fast", "faster", "quick", "quicker",
                          "accelerate", "accelerates", "acceleration", "mpg", "fuel", "economy", "efficient", "weigh",
                          "weighs", "weight", "range", "engine", "better", "difference", "differences", "compare",
                          "compared", "vs", "versus", "tow", "towing", "drivetrain", "transmission", "electric",
                          "hybrid", "trim", "trims", "seats", "cargo", "kw", "far", "charge", "charging"}
ARTICLES = {"the", "a", "an", "my", "our", "his", "her", "their", "your"}
MAX_NAME_TOKENS = 4
MAX_AMBIGUOUS = 3


@dataclass(frozen=True)
class VehicleKey:
    """The naming fields of one stored vehicle (enough to match it, not its figures)."""

    id: str
    make: str
    model: str
    year: int
    trim: str
    segment: str = ""
    order: int = 0


@dataclass(frozen=True)
class Named:
    """A vehicle the question names, with how sure the match is (higher is surer)."""

    key: VehicleKey
    score: float
    position: int  # token index of the mention, so vehicles come back in the order they were asked about


@dataclass(frozen=True)
class UnknownName:
    text: str                   # as the question wrote it: "2024 Toyota Zephyr GT"
    make: str | None            # the store's spelling of the make, when the make is known
    near: tuple[str, ...] = ()  # ids of vehicles named alongside (a comparison's real half)


@dataclass
class EntityMatch:
    vehicles: list[Named] = field(default_factory=list)
    unknown: UnknownName | None = None


@dataclass(frozen=True)
class _Token:
    text: str
    compact: str
    capitalized: bool
    start: int
    after_break: bool = False  # a sentence or clause ends before it ("Solstra. Thoughts?", "Zephyr, Toyota")


_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_TRIM_SPLIT = re.compile(r"[\s()/,]+")


def compact(text: str) -> str:
    """'F-150' -> 'f150', 'ID.4' -> 'id4', 'C 300' -> 'c300'."""
    return _NOT_ALNUM.sub("", text.lower())


def trim_words(trim: str) -> tuple[str, ...]:
    """'Select (standard range)' -> ('select', 'standard', 'range')."""
    return tuple(w for w in (compact(part) for part in _TRIM_SPLIT.split(trim)) if w)


_BREAK = re.compile(r"[.!?,;:]")


def tokenize(text: str) -> list[_Token]:
    tokens = []
    end = 0
    for m in TOKEN.finditer(text):
        word = re.sub(r"['’]s$", "", m.group())
        tokens.append(_Token(word, compact(word), word[:1].isupper() or any(c.isdigit() for c in word[1:]), m.start(),
                             bool(_BREAK.search(text, end, m.start()))))
        end = m.end()
    return tokens


class EntityIndex:
    """Normalized look-up tables over the store's vehicles; ``match`` finds the ones a question names."""

    def __init__(self, keys: Iterable[VehicleKey], vocabulary: Iterable[str] = ()):
        self.keys = list(keys)
        self.vocabulary = {w.lower() for w in vocabulary} | STOPWORDS
        self.makes: dict[str, str] = {}                              # compact make -> make
        self.rows: dict[tuple[str, str], list[VehicleKey]] = defaultdict(list)
        self.exact: dict[str, set[tuple[str, str]]] = defaultdict(set)   # compact model name -> (make, model)
        self.alias: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self.model_words: dict[str, set[str]] = defaultdict(set)         # make -> first words of its model names
        self._trims: dict[str, tuple[tuple[str, ...], str]] = {}
        for key in self.keys:
            self._trims[key.id] = (trim_words(key.trim), compact(key.trim))
            self.makes[compact(key.make)] = key.make
            self.rows[(key.make, key.model)].append(key)
            self.exact[compact(key.model)].add((key.make, key.model))
            self.model_words[key.make].add(compact(key.model.split()[0]))
        for make, model in self.rows:
            self._add_aliases(make, model)
        for alias, target in MODEL_ALIASES.items():
            if target in self.exact and alias not in self.exact:
                self.alias[alias] |= self.exact[target]
        for alias, target in MAKE_ALIASES.items():
            if target in self.makes:
                self.makes.setdefault(alias, self.makes[target])
        self._fuzzy_models = sorted(k for k in (*self.exact, *self.alias) if k.isalpha() and len(k) >= 4)
        self._fuzzy_makes = sorted(k for k in self.makes if k.isalpha() and len(k) >= 4)
        self.vocabulary -= set(self.makes)
        self.vocabulary -= {k for k in (*self.exact, *self.alias) if len(k) >= 3}

    def _add_aliases(self, make: str, model: str) -> None:
        """Sub-spans of a multi-word model name that identify it: 'Miata' of 'MX-5 Miata', 'Silverado' of 'Silverado 1500'."""
        words = model.split()
        for length in range(1, len(words)):
            for start in range(len(words) - length + 1):
                alias = compact(" ".join(words[start:start + length]))
                if (len(alias) >= 3 and not alias.isdigit() and alias not in GENERIC
                        and (make, model) not in self.exact.get(alias, ())
                        and not any(m == make for m, _ in self.exact.get(alias, ()))):
                    self.alias[alias].add((make, model))

    # -- matching -----------------------------------------------------------------------------------

    def match(self, question: str) -> EntityMatch:
        tokens = tokenize(question)
        used = [False] * len(tokens)
        makes = self._makes(tokens, used)
        mentions = self._models(tokens, used, makes)
        result = EntityMatch()
        seen: set[str] = set()
        for position, candidates, exactness in mentions:
            # an ambiguous name ("Ioniq": Ioniq 5 and Ioniq 6) brings each model it may mean
            groups = [candidates] if len(candidates) == 1 else [{c} for c in sorted(candidates)]
            found = [self._resolve(tokens, position, group, makes, exactness * (1 if len(groups) == 1 else 0.95), used)
                     for group in groups]
            for named in sorted((n for n in found if n), key=lambda n: -n.score)[:MAX_AMBIGUOUS]:
                if named.key.id not in seen:
                    seen.add(named.key.id)
                    result.vehicles.append(named)
        result.unknown = self._unknown(tokens, used, makes, tuple(n.key.id for n in result.vehicles))
        return result

    def _makes(self, tokens: Sequence[_Token], used: list[bool]) -> dict[int, str]:
        """Token index -> make, for every make the question mentions (exact, alias or typo)."""
        found: dict[int, str] = {}
        i = 0
        while i < len(tokens):
            two = tokens[i].compact + (tokens[i + 1].compact if i + 1 < len(tokens) else "")
            if i + 1 < len(tokens) and two in self.makes and tokens[i].compact not in self.makes:
                found[i] = self.makes[two]
                used[i] = used[i + 1] = True
                i += 2
                continue
            word = tokens[i].compact
            make = self.makes.get(word)
            if make is None and tokens[i].capitalized and word.isalpha() and len(word) >= 5 \
                    and word not in self.vocabulary and self._fuzzy_makes:
                best = process.extractOne(word, self._fuzzy_makes, scorer=fuzz.ratio, score_cutoff=84)
                make = self.makes[best[0]] if best else None
            if make is not None:
                found[i] = make
                used[i] = True
            i += 1
        return found

    def _models(self, tokens: Sequence[_Token], used: list[bool],
                makes: dict[int, str]) -> list[tuple[int, set[tuple[str, str]], float]]:
        """(token index, candidate (make, model)s, exactness) for each model mention, longest span first."""
        mentions = []
        i = 0
        while i < len(tokens):
            if used[i] and i not in makes:
                i += 1
                continue
            hit = None
            for length in range(min(MAX_NAME_TOKENS, len(tokens) - i), 0, -1):
                if any(used[j] for j in range(i, i + length)):
                    continue
                key = "".join(t.compact for t in tokens[i:i + length])
                candidates = self._allowed(self.exact.get(key, set()), tokens, i, makes)
                exactness = 1.0
                if not candidates:
                    candidates = self._allowed(self.alias.get(key, set()), tokens, i, makes)
                    exactness = 0.9
                if candidates:
                    hit = (length, candidates, exactness)
                    break
            if hit is None and not used[i]:
                hit = self._fuzzy(tokens, i, makes)
            if hit is None:
                i += 1
                continue
            length, candidates, exactness = hit
            for j in range(i, i + length):
                used[j] = True
            mentions.append((i, candidates, exactness))
            i += length
        return mentions

    def _allowed(self, candidates: set[tuple[str, str]], tokens: Sequence[_Token], i: int,
                 makes: dict[int, str]) -> set[tuple[str, str]]:
        """Drop candidates whose name is too plain to stand alone ('2', '1500', 'Z') unless the make is next to it."""
        if not candidates:
            return candidates
        adjacent = makes.get(i - 1) or (makes.get(i - 2) if i >= 2 and YEAR.match(tokens[i - 1].text) else None)
        mentioned = set(makes.values())
        kept = set()
        for make, model in candidates:
            key = compact(model)
            plain = key.isdigit() or len(key) < 2 or (key.isalpha() and len(key) < 3)
            if plain and adjacent != make:
                continue
            if adjacent is None and i > 0 and self._is_unknown_word(tokens[i - 1]) and tokens[i - 1].compact not in self.makes:
                continue  # another brand's product: "Michelin Pilot Sport", not the Honda Pilot
            if not tokens[i].capitalized and key in self.vocabulary and make not in mentioned:
                continue  # a lower-case common word ('escape', 'leaf') is a word, not a model
            kept.add((make, model))
        if len(kept) > 1 and mentioned:
            narrowed = {c for c in kept if c[0] in mentioned}
            kept = narrowed or kept
        return kept

    def _fuzzy(self, tokens: Sequence[_Token], i: int, makes: dict[int, str]):
        """A typo'd model name ('Camery', 'Accrod'): one alphabetic word, not an ordinary word."""
        word = tokens[i].compact
        if not word.isalpha() or len(word) < 4 or word in self.vocabulary or word.rstrip("s") in self.vocabulary:
            return None
        if not (tokens[i].capitalized or makes or any(YEAR.match(t.text) for t in tokens)):
            return None
        cutoff = 80 if len(word) >= 6 else 86
        best = process.extractOne(word, self._fuzzy_models, scorer=fuzz.ratio, score_cutoff=cutoff)
        if not best:
            return None
        candidates = self._allowed(self.exact.get(best[0]) or self.alias.get(best[0], set()), tokens, i, makes)
        return (1, candidates, 0.6 + best[1] / 500) if candidates else None

    def _resolve(self, tokens: Sequence[_Token], i: int, candidates: set[tuple[str, str]], makes: dict[int, str],
                 exactness: float, used: list[bool]) -> Named | None:
        """The best row of the named model: the year asked for, then the trim words that follow, then table order."""
        year = _year_near(tokens, i)
        end = i + 1
        while end < len(tokens) and used[end] and end not in makes:
            end += 1
        following = []
        for t in tokens[end:end + 4]:
            if t.compact in self.makes or YEAR.match(t.text):
                break
            following.append(t.compact)
        best: tuple[tuple, VehicleKey] | None = None
        for make, model in candidates:
            for key in self.rows[(make, model)]:
                words, whole = self._trims[key.id]
                trim_hits = sum(1 for w in words if w in following and w != "base")
                if words and whole in following:
                    trim_hits = max(trim_hits, len(words))
                rank = (key.year == year, trim_hits, -abs(key.year - year) if year else key.year, -key.order)
                if best is None or rank > best[0]:
                    best = (rank, key)
        if best is None:
            return None
        rank, key = best
        for j, t in enumerate(tokens[end:end + 4], start=end):  # the trim words belong to this mention
            if rank[1] and t.compact in self._trims[key.id][0]:
                used[j] = True
        score = 100.0 * exactness + 10.0 * rank[0] + 3.0 * rank[1] + (5.0 if key.make in makes.values() else 0.0)
        return Named(key, score, i)

    # -- unknown vehicles ---------------------------------------------------------------------------

    def _unknown(self, tokens: Sequence[_Token], used: list[bool], makes: dict[int, str],
                 near: tuple[str, ...]) -> UnknownName | None:
        for i, t in enumerate(tokens):
            if used[i] and i not in makes:
                continue
            if i in makes:  # a known make followed by a name the store lacks: "Toyota Zephyr GT"
                dated = i > 0 and bool(YEAR.match(tokens[i - 1].text))  # "2015 Honda Fit": a name, though 'fit' is a word
                end = self._name_end(tokens, used, i + 1, makes, dated=dated, make=makes[i])
                if end > i + 1:
                    return UnknownName(self._text(tokens, i, end, year_before=True), makes[i], near)
                continue
            if YEAR.match(t.text) and i + 1 < len(tokens) and i + 1 not in makes:  # "2024 Veltron Aero GT"
                end = self._name_end(tokens, used, i + 1, makes)
                if end > i + 1:
                    return UnknownName(self._text(tokens, i, end), None, near)
                continue
            if self._is_unknown_word(t) and not used[i]:  # "the Kestrel Motors Arrow S", "Veltron Aero GT"
                end = self._name_end(tokens, used, i, makes)
                introduced = i > 0 and tokens[i - 1].compact in ARTICLES
                coded = any((x.text.isupper() and len(x.text) >= 2) or any(c.isdigit() for c in x.text)
                            for x in tokens[i + 1:end])
                about_vehicles = any(x.compact in VEHICLE_QUESTION_WORDS for x in tokens)
                if end >= i + 2 and (introduced or coded) and about_vehicles:
                    return UnknownName(self._text(tokens, i, end, year_before=True), None, near)
        return None

    def _name_end(self, tokens: Sequence[_Token], used: list[bool], start: int, makes: dict[int, str],
                  dated: bool = False, make: str | None = None) -> int:
        """End of a made-up name starting at ``start`` (== start when there is none)."""
        if start >= len(tokens) or used[start] or start in makes:
            return start
        first = tokens[start]
        prefix = make is not None and first.compact in self.model_words.get(make, set())
        plain_name = dated and first.capitalized and first.compact not in VEHICLE_WORDS | STOPWORDS
        if not (self._is_unknown_word(first) or plain_name
                or (prefix and start + 1 < len(tokens) and tokens[start + 1].capitalized)):
            return start
        end = start + 1
        while end < len(tokens) and end - start < MAX_NAME_TOKENS and not used[end] and end not in makes:
            t = tokens[end]
            if t.after_break or not (t.capitalized or t.compact.isdigit()) or YEAR.match(t.text) or t.compact in STOPWORDS \
                    or ("-" in t.text and t.compact.isdigit()) or (t.compact in VEHICLE_WORDS and not t.text.isupper()):
                break
            end += 1
        if prefix and end == start + 1:
            return start
        return end

    def _is_unknown_word(self, t: _Token) -> bool:
        word = t.compact
        if not t.capitalized or not word or YEAR.match(t.text) or word in STOPWORDS or word in VEHICLE_WORDS:
            return False
        if any(c.isdigit() for c in word):
            return word not in self.exact and any(c.isalpha() for c in word)
        return word not in self.vocabulary and word.rstrip("s") not in self.vocabulary and len(word) >= 2

    @staticmethod
    def _text(tokens: Sequence[_Token], start: int, end: int, year_before: bool = False) -> str:
        if year_before and start > 0 and YEAR.match(tokens[start - 1].text):
            start -= 1
        return " ".join(t.text for t in tokens[start:end])

    def suggestions(self, unknown: UnknownName, limit: int = 2) -> list[VehicleKey]:
        """Closest real vehicles: of the same make (a similar model name, then the year asked, then table
        order), else the real vehicles the question names beside it."""
        if unknown.make:
            words = [compact(w) for w in unknown.text.split()]
            year = next((int(w) for w in words if YEAR.match(w)), None)
            asked = "".join(w for w in words if not YEAR.match(w) and w != compact(unknown.make))
            rows = [rows[0] for (make, _), rows in self.rows.items() if make == unknown.make]
            rows.sort(key=lambda k: (-(fuzz.ratio(compact(k.model), asked) >= 60), -(k.year == year), k.order))
            return rows[:limit]
        by_id = {k.id: k for k in self.keys} if unknown.near else {}
        return [by_id[i] for i in unknown.near if i in by_id][:limit]


def _year_near(tokens: Sequence[_Token], i: int) -> int | None:
    """The model year written just before the model (up to two tokens back, for '2024 Toyota Camry') or just after."""
    for j in (i - 1, i - 2, i - 3, i + 1):
        if 0 <= j < len(tokens) and YEAR.match(tokens[j].text):
            return int(tokens[j].text)
    return None
