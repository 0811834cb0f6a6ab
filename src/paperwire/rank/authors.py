"""Followed authors: is this paper by someone the reader follows?

Feeds spell one person many ways: "Yann LeCun", "Y. LeCun", "LeCun, Yann", "Yann Le Cun",
"Sebastien Bubeck" for "Sébastien Bubeck", "Juergen" or "Jurgen" for "Jürgen". A name is reduced to its family name (accents and
case folded, particles such as "van" or "le" joined to it, spaces and hyphens dropped) and its
first given name; two names match when the family names are equal and the first given names
agree: equal when both are written out, the same initial when either is an initial, or either
absent. "Yann LeCun" and "Yves LeCun" do not match. A followed name of two written-out words
is read in either order ("Wang Wei" follows "Wei Wang"): many write their own name family
first, and a reader who follows an author expects their papers.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

_PARTICLES = {
    "al", "bin", "da", "das", "de", "del", "della", "den", "der", "di", "dos", "du", "el", "la",
    "le", "ten", "ter", "van", "von", "zu",
}  # fmt: skip
_SUFFIXES = {"jr", "sr", "ii", "iii", "iv"}
_TOKEN = re.compile(r"[^\W\d_]+", re.UNICODE)
# Letters that feeds spell out as often as they drop the accent: "Jürgen" is "Juergen" in one
# feed and "Jurgen" in another, so a name holding one has both spellings. Spelling out every
# "u" as "ue" instead would make "Michael" (→ "michal") Michał.
_SPELT_OUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue",
                            "ø": "oe", "Ø": "Oe", "æ": "ae", "Æ": "Ae"})  # fmt: skip


@dataclass(frozen=True)
class NameKey:
    family: str  # folded, particles joined: "lecun", "vandermaaten"
    given: str  # the first given name, folded ("yann"), or its initial ("y"), or ""


def fold(text: str) -> str:
    """Lower case without accents: "Sébastien" → "sebastien", "Łukasz" → "lukasz"."""
    text = text.replace("ł", "l").replace("Ł", "L").replace("ø", "o").replace("Ø", "O")
    text = text.replace("æ", "ae").replace("Æ", "Ae")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@functools.lru_cache(maxsize=65536)
def name_key(name: str) -> NameKey | None:
    """The family name and first given name of a written name; None if it has no letters."""
    if "," in name:  # "LeCun, Yann" (BibTeX and library order)
        family_part, _, given_part = name.partition(",")
        family = _TOKEN.findall(fold(family_part))
        given = _TOKEN.findall(fold(given_part))
    else:
        tokens = [t for t in _TOKEN.findall(fold(name)) if t not in _SUFFIXES]
        if not tokens:
            return None
        family = [tokens.pop()]
        while tokens and tokens[-1] in _PARTICLES and len(tokens) > 1:
            family.insert(0, tokens.pop())
        # "van der Maaten" written without a given name: the first particle is no given name
        # (one particle alone before a name is: "Le Song", "Da Yan")
        if len(family) > 1 and len(tokens) == 1 and tokens[0] in _PARTICLES:
            family.insert(0, tokens.pop())
        given = tokens
    family = [t for t in family if t not in _SUFFIXES]
    if not family:
        return None
    # "J.-P. Sartre" gives "j", "p": the first is what the reader sees first
    return NameKey("".join(family), given[0] if given else "")


def name_keys(name: str) -> tuple[NameKey, ...]:
    """The keys of a name in each way feeds spell it: one, or two for "Jürgen" (see _SPELT_OUT)."""
    composed = unicodedata.normalize("NFC", name)  # "u" + a combining diaeresis is "ü"
    spelt_out = composed.translate(_SPELT_OUT)
    keys = [name_key(composed)] + ([name_key(spelt_out)] if spelt_out != composed else [])
    return tuple(dict.fromkeys(k for k in keys if k is not None))


def swapped_keys(name: str) -> tuple[NameKey, ...]:
    """A two-word name's keys read family name first, as many write their own ("Wang Wei" for
    the "Wei Wang" of arXiv's author lists): for a followed name, so a reader who writes it
    either way gets the author's papers. Only two written-out words with no comma, initial or
    particle: "Le Song", "Y. LeCun" and "LeCun, Yann" say which is the family name."""
    if "," in name or "." in name:
        return ()
    out = []
    composed = unicodedata.normalize("NFC", name)
    for spelling in dict.fromkeys((composed, composed.translate(_SPELT_OUT))):
        tokens = [t for t in _TOKEN.findall(fold(spelling)) if t not in _SUFFIXES]
        if len(tokens) == 2 and all(len(t) > 1 and t not in _PARTICLES for t in tokens):
            out.append(NameKey(tokens[0], tokens[1]))
    return tuple(k for k in dict.fromkeys(out) if k not in name_keys(name))


def same_person(a: NameKey, b: NameKey) -> bool:
    if a.family != b.family:
        return False
    if not a.given or not b.given:
        return True
    if len(a.given) == 1 or len(b.given) == 1:
        return a.given[0] == b.given[0]
    return a.given == b.given


class Following:
    """One reader's followed authors, checked against the author lists of papers."""

    def __init__(self, names: Iterable[str]):
        self._by_family: dict[str, list[tuple[NameKey, str]]] = {}
        for name in names:
            for key in (*name_keys(name), *swapped_keys(name)):
                self._by_family.setdefault(key.family, []).append((key, name))

    def __bool__(self) -> bool:
        return bool(self._by_family)

    def match(self, authors: Iterable[str]) -> str | None:
        """The followed name (as the reader wrote it) among these authors, else None."""
        for author in authors:
            for key in name_keys(author):
                for followed, written in self._by_family.get(key.family, ()):
                    if same_person(followed, key):
                        return written
        return None
