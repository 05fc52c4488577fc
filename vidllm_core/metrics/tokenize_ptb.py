"""Pure-Python stand-in for pycocoevalcap's PTBTokenizer (Stanford PTBTokenizer 3.4.1, `-preserveLines -lowerCase`).

Reference: METRICS.md sec. 1.2. pycocoevalcap runs the Java tokenizer on one caption per line, lower-cases every
token *after* tokenising (so brackets come out as `-lrb-`/`-rrb-`), then drops the tokens in `PUNCTUATIONS`.
This module reproduces that output for the English used in 3D captioning / QA benchmarks without Java:

- words keep internal hyphens (`l-shaped`), decimal / thousands separators (`1.5`, `1,000`), slashes (`1/2`)
  and abbreviation dots (`e.g.`, `mr.`);
- clitics are split the PTB way: `it's` -> `it 's`, `isn't` -> `is n't`, `can't` -> `ca n't`, `cannot` -> `can not`;
- quotes become ```` / `''` / `` ` `` / `'` (all dropped afterwards), brackets become `-lrb-` etc. (kept);
- a run of `?`/`!` is one token (`!!!`, `?!` are kept); a run of dots is a single ellipsis (dropped);
- a word directly followed by `.` and then `,` `;` or `:` keeps its dot (`nightstand.,` -> `nightstand.`),
  as PTB reads it as an abbreviation.

Not reproduced (documented in docs/metrics.md): the full Penn abbreviation list, URL/e-mail/emoticon rules,
British-to-American respelling (the fixtures show `grey` left unchanged), SGML/XML entities.
"""

from __future__ import annotations

import re

__all__ = ["PUNCTUATIONS", "ptb_tokenize", "ptb_tokens"]

#: Tokens pycocoevalcap removes after tokenising (note: upper-case bracket names, so `-lrb-` survives).
PUNCTUATIONS: frozenset[str] = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr vs etc prof inc ltd co corp mt ft approx dept est fig no".split()
)
_SPLIT_WORDS = {  # PTB splits these fused forms into two tokens
    "cannot": ("can", "not"), "gonna": ("gon", "na"), "gotta": ("got", "ta"), "wanna": ("wan", "na"),
    "lemme": ("lem", "me"), "gimme": ("gim", "me"), "'tis": ("'t", "is"), "'twas": ("'t", "was"),
}
_CLITICS = ("n't", "'s", "'re", "'ve", "'ll", "'d", "'m")
_UNICODE_MAP = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00a0": " ", "\u2009": " ", "\u200b": " ",
    "\u2013": " -- ", "\u2014": " -- ", "\u2015": " -- ", "\u2026": " ... ",
})
_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}

# Ordered alternatives; the first that matches at the current position wins.
_TOKEN_RE = re.compile(
    r"""
    (?P<number>[+-]?\d+(?:[.,:/]\d+)*)(?![A-Za-z0-9]|\.[A-Za-z0-9])  # 1.5  1,000  3:30  1/2
  | (?P<clitic>'(?:[sdmSDM]|re|ve|ll|RE|VE|LL)(?![A-Za-z0-9]))                   # a detached 's
  | (?P<abbr>(?:[A-Za-z]\.){2,})                                      # e.g.  u.s.a.
  | (?P<word>[A-Za-z0-9]+(?:(?:[-'&/]|\.(?=[A-Za-z0-9]))[A-Za-z0-9]+)*'?)  # words, l-shaped, o'clock, it's
  | (?P<ellipsis>\.{2,}|(?:\.\ ){2,}\.)                              # ..  ...  . . .
  | (?P<stop>[?!]+|\.)                                                # !!!  ?!  .
  | (?P<dashes>-{2,})                                                 # -- ---
  | (?P<other>\S)                                                     # any other single character
    """,
    re.VERBOSE,
)


def _split_clitics(word: str) -> list[str]:
    low = word.lower()
    if low in _SPLIT_WORDS:
        first, second = _SPLIT_WORDS[low]
        return [word[: len(first)], word[len(first):]]
    for clitic in _CLITICS:
        if low.endswith(clitic) and len(low) > len(clitic):
            return [*_split_clitics(word[: -len(clitic)]), word[-len(clitic):]]
    if word.endswith("'") and len(word) > 1:  # plural possessive: chairs' -> chairs '
        return [*_split_clitics(word[:-1]), "'"]
    return [word]


def ptb_tokens(text: str) -> list[str]:
    """Tokenise one caption like PTBTokenizer (before lower-casing and punctuation removal)."""
    text = text.replace("\n", " ").replace("\r", " ").translate(_UNICODE_MAP)
    tokens: list[str] = []
    pos, n = 0, len(text)
    while pos < n:
        if text[pos].isspace():
            pos += 1
            continue
        m = _TOKEN_RE.match(text, pos)
        assert m is not None  # `other` matches any non-space character
        kind, tok = m.lastgroup, m.group()
        end = m.end()
        if kind == "word":
            if end < n and text[end] == "." and (
                (tok.lower() in _ABBREVIATIONS and not _sentence_final(text, end))
                or (end + 1 < n and text[end + 1] in ",;:")  # PTB: `word.,` reads as an abbreviation
            ):
                tok, end = tok + ".", end + 1
            tokens.extend(_split_clitics(tok))
        elif kind == "ellipsis":
            tokens.append("...")
        elif kind == "dashes":
            tokens.append("--")
        elif tok in _BRACKETS:
            tokens.append(_BRACKETS[tok])
        elif tok == '"':
            opening = pos == 0 or text[pos - 1].isspace() or text[pos - 1] in "([{"
            tokens.append("``" if opening else "''")
        elif tok == "'":
            opening = pos == 0 or text[pos - 1].isspace() or text[pos - 1] in "([{"
            tokens.append("`" if opening else "'")
        else:
            tokens.append(tok)
        pos = end
    return tokens


def _sentence_final(text: str, dot: int) -> bool:
    """True when the '.' at index `dot` ends the line (PTB then splits it off even after an abbreviation)."""
    return text[dot + 1:].strip() == ""


def ptb_tokenize(text: str) -> str:
    """pycocoevalcap's caption normalisation: PTB tokens, lower-cased, punctuation tokens dropped, space-joined."""
    lowered = (t.lower() for t in ptb_tokens(text))
    return " ".join(t for t in lowered if t not in PUNCTUATIONS)
