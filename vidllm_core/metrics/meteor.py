"""METEOR 1.5 in pure Python (exact + stem matching), the METEOR column of the paper's Table 1 without Java.

Not in the Vid-LLM paper itself: it reports METEOR as computed by pycocoevalcap's METEOR 1.5 jar
(`-l en -norm`). This re-implementation follows METEOR 1.5's scoring (Denkowski & Lavie 2014, English "rank"
parameters alpha 0.85, beta 0.20, gamma 0.60, delta 0.75, module weights exact 1.0 / stem 0.6) with two matching
stages: exact words and Snowball-English stems. The jar's synonym (WordNet) and paraphrase stages need data
tables that cannot be shipped or downloaded here, and its function-word list is replaced by a short list of
English closed-class words, so scores differ slightly from the jar; docs/metrics.md states the measured difference
on the reference fixture.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import snowballstemmer

__all__ = ["MeteorParams", "MeteorStats", "meteor", "segment_stats"]

STAGES = ("exact", "stem")

# English closed-class words (articles, pronouns, prepositions, conjunctions, auxiliaries, determiners): METEOR
# weights matches of these by 1 - delta instead of delta. Our own list, not the jar's frequency-derived one.
FUNCTION_WORDS = frozenset("""
a an the this that these those there here it its it's they them their theirs he him his she her hers we us our
ours you your yours i me my mine one ones some any each every all both either neither no not none such
of in on at to from by with without into onto upon over under above below between among through across along
around behind beside besides near next against toward towards about after before during until since within
and or but nor so yet if then than because while although though as whether
is are was were be been being am do does did done have has had having will would shall should can could may
might must also very too just only quite rather more most less least much many few other another same
what which who whom whose where when why how
""".split())


@dataclass(frozen=True)
class MeteorParams:
    """METEOR 1.5 English parameters (task "rank", the jar's default for `-l en`)."""

    alpha: float = 0.85
    beta: float = 0.20
    gamma: float = 0.60
    delta: float = 0.75
    weights: tuple[float, ...] = (1.0, 0.6)  # exact, stem


@dataclass
class MeteorStats:
    """Sufficient statistics of one segment (or of a corpus: the field-wise sum), as the jar aggregates them."""

    test_length: int = 0
    reference_length: int = 0
    test_function_words: int = 0
    reference_function_words: int = 0
    test_content_matches: list[int] = field(default_factory=lambda: [0] * len(STAGES))
    test_function_matches: list[int] = field(default_factory=lambda: [0] * len(STAGES))
    reference_content_matches: list[int] = field(default_factory=lambda: [0] * len(STAGES))
    reference_function_matches: list[int] = field(default_factory=lambda: [0] * len(STAGES))
    matches: int = 0  # matched words on each side (unigram matching: equal on both sides)
    chunks: int = 0

    def __add__(self, other: MeteorStats) -> MeteorStats:
        out = MeteorStats()
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            setattr(out, f.name, [x + y for x, y in zip(a, b)] if isinstance(a, list) else a + b)
        return out

    def score(self, p: MeteorParams = MeteorParams()) -> float:
        def weighted_length(length: int, function_words: int) -> float:
            return p.delta * (length - function_words) + (1.0 - p.delta) * function_words

        def weighted_matches(content: list[int], function: list[int]) -> float:
            return sum(w * (p.delta * c + (1.0 - p.delta) * f) for w, c, f in zip(p.weights, content, function))

        test_len = weighted_length(self.test_length, self.test_function_words)
        ref_len = weighted_length(self.reference_length, self.reference_function_words)
        test_m = weighted_matches(self.test_content_matches, self.test_function_matches)
        ref_m = weighted_matches(self.reference_content_matches, self.reference_function_matches)
        if test_len <= 0 or ref_len <= 0 or test_m <= 0 or ref_m <= 0:
            return 0.0  # the jar's NaN / division-by-zero case
        precision, recall = test_m / test_len, ref_m / ref_len
        f_mean = 1.0 / ((1.0 - p.alpha) / precision + p.alpha / recall)
        perfect = self.matches == self.test_length == self.reference_length and self.chunks == 1
        frag = 0.0 if perfect else self.chunks / self.matches
        return max(f_mean * (1.0 - p.gamma * frag ** p.beta), 0.0)


_STEMMER = snowballstemmer.stemmer("english")


_PUNCTUATION = re.compile(r"([.,;:!?()\"])")


def _tokens(text: str) -> list[str]:
    """Lower-cased tokens with sentence punctuation split off (the jar's `-norm`; hyphens stay inside words)."""
    return _PUNCTUATION.sub(r" \1 ", text.lower()).split()


def _align(test: list[str], ref: list[str], beam: int = 64) -> list[tuple[int, int, int]]:
    """One-to-one word alignment (test index, ref index, stage) as METEOR's aligner ranks them: most words
    matched, then fewest chunks, then smallest total distance between matched positions (beam search)."""
    test_stems, ref_stems = _STEMMER.stemWords(test), _STEMMER.stemWords(ref)
    options: list[list[tuple[int, int]]] = []
    for i, word in enumerate(test):
        opts = [(j, 0) for j, r in enumerate(ref) if r == word]
        opts += [(j, 1) for j, r in enumerate(ref) if r != word and ref_stems[j] == test_stems[i]]
        options.append(opts)
    # state: (matches, chunks, distance, used ref mask, last (i, j), alignment)
    states: list[tuple[int, int, int, int, tuple[int, int], tuple]] = [(0, 0, 0, 0, (-2, -2), ())]
    for i, opts in enumerate(options):
        nxt = list(states)  # leave test word i unmatched
        for n, ch, dist, used, (li, lj), al in states:
            for j, stage in opts:
                if used >> j & 1:
                    continue
                new_chunk = not (li == i - 1 and lj == j - 1)
                nxt.append((n + 1, ch + new_chunk, dist + abs(i - j), used | 1 << j, (i, j), al + ((i, j, stage),)))
        nxt.sort(key=lambda s: (-s[0], s[1], s[2]))
        states = nxt[:beam]
    return list(states[0][5])


def segment_stats(test: str, reference: str) -> MeteorStats:
    """METEOR statistics of one candidate against one reference (whitespace tokens, lower-cased)."""
    t, r = _tokens(test), _tokens(reference)
    s = MeteorStats(test_length=len(t), reference_length=len(r),
                    test_function_words=sum(w in FUNCTION_WORDS for w in t),
                    reference_function_words=sum(w in FUNCTION_WORDS for w in r))
    alignment = sorted(_align(t, r))
    last = (-2, -2)
    for i, j, stage in alignment:
        (s.test_function_matches if t[i] in FUNCTION_WORDS else s.test_content_matches)[stage] += 1
        (s.reference_function_matches if r[j] in FUNCTION_WORDS else s.reference_content_matches)[stage] += 1
        s.matches += 1
        s.chunks += not (last[0] == i - 1 and last[1] == j - 1)
        last = (i, j)
    return s


def meteor(candidates: Mapping[str, str], references: Mapping[str, Sequence[str]],
           params: MeteorParams = MeteorParams()) -> tuple[float, dict[str, float]]:
    """Corpus and per-item METEOR. Per item: the best-scoring reference; corpus: the score of the summed
    statistics of those best references (the jar's EVAL aggregate, not a mean of per-item scores)."""
    per_item: dict[str, float] = {}
    total = MeteorStats()
    for key, refs in references.items():
        best = max((segment_stats(candidates[key], ref) for ref in refs), key=lambda st: st.score(params))
        per_item[key] = best.score(params)
        total = total + best
    return total.score(params), per_item
