"""The words of each reason a pick is in a digest (rank/reasons.py says which hold)."""

from __future__ import annotations

import re
from functools import lru_cache

from ..paper import Pick
from ..rank.paper_phrases import phrase_pairs
from ..rank.reasons import Ranked, Reason
from ..rank.stop_words import ENGLISH_STOP_WORDS
from ..tex import readable

# Each kind of reason as the reader reads it; ``{text}`` is the reason's phrase or title.
_WORDS = {
    "followed_author": "by an author you follow ({text})",
    "like_library": "like “{text}” in your library",
    "like_seed": "like “{text}”, one of your seed papers",
    "like_liked": "like “{text}”, which you liked",
    "matches_interest": "matches your interest “{text}”",
    "close_to_interest": "close to your interest “{text}”",
    "about": "about “{text}”",
    "close_in_meaning": "close in meaning to your interest “{text}”",
    "must_match": "mentions “{text}”, as you asked",
    "new": "new in your feeds",
}


def words(reason: Reason) -> str:
    """One reason as the reader reads it, in the e-mail, Slack, the feed and ``digest``."""
    kind = reason.kind
    if kind in _WORDS:
        # str.replace, not str.format: a title may hold braces of its own
        text = readable(reason.text) if kind.startswith("like_") else reason.text
        return _WORDS[kind].replace("{text}", text)
    if kind == "popular":
        # the count is the one Hugging Face showed when the paper was last fetched: "today"
        # would be wrong in a weekly digest, and only that feed carries upvotes
        count = reason.upvotes
        return f"popular on Hugging Face: {count} upvote{'' if count == 1 else 's'}"
    if kind == "above_bar":
        # the score and the bar are standard deviations above the reader's average paper:
        # numbers no reader can place ("scored 18.17, above your usual bar of 13.50"); where
        # the bar sits among their recent papers is what they can (both stay in --json)
        share = reason.numbers[2]
        return f"in the top {share:g}% of recent papers for you"
    raise ValueError(f"no words for a reason of kind {kind!r}")


def worded(ranked: Ranked) -> Pick:
    """A ranked pick with its reasons in words, as it is delivered and kept in the ledger."""
    reasons = [words(r) for r in _joined(ranked.reasons, ranked.paper or {})]
    return Pick(ranked.paper_id, ranked.title, ranked.url, ranked.score, reasons, ranked.paper)


def _joined(reasons: list[Reason], paper: dict) -> list[Reason]:
    """Two key phrases that are one run of the paper's words, 'about “KV cache”; about “cache
    compression”' (pairs of adjacent words, overlapping, in either order), as one: 'about “KV cache
    compression”', written as the paper writes it; and a key phrase the paper only ever writes
    before another word, as the name it is part of (:func:`_whole`)."""
    text = _text_of(paper.get("title") or "", paper.get("abstract") or "")
    out: list[Reason] = []
    for reason in reasons:
        last = out[-1] if out else None
        if last is not None and last.kind == reason.kind == "about":
            # in either order: 'about “Radiance Fields”; about “Neural Radiance”' was said so
            run = _one_run(last.text, reason.text, text) or _one_run(reason.text, last.text, text)
            if run is not None:
                out[-1] = Reason("about", run)
                continue
        out.append(reason)
    whole: list[Reason] = []
    for reason in out:
        if reason.kind == "about":
            said = _said_whole(reason.text, text)
            if said != reason.text:  # a new Reason only where the name grew
                reason = Reason("about", said)
        if reason not in whole:
            whole.append(reason)
    return whole


# a paper's picks come back under reader after reader: the same text object each time is
# hashed once, and found at once in the caches below (a new string was hashed for each)
@lru_cache(maxsize=4096)
def _text_of(title: str, abstract: str) -> str:
    return f"{title}\n{abstract}"


# A key phrase is a word pair (or a source's keyword) of the paper: one the paper writes only
# as the start of a longer name ("Vision-Language" in "Vision-Language Model" and
# "Vision-Language tasks", "large language" in "large language models") is a qualifier, not
# what the paper is about; up to this many of the words after it make it whole.
_WHOLE_WORDS = 2


def _may_go_on(phrase: str, flat: str) -> bool:
    """Whether :func:`_whole` may say more than ``phrase``, from the paper's text lowercased
    with its spaces made single (``flat``), without a pattern: every use of the phrase (whole
    words) must go on with a word that is no stop word, the same word for a phrase of words
    written twice or more. Most phrases end a use somewhere: a digest of 20,000 readers asked
    ~400,000 times, and compiling a pattern for each was half its CPU. Never False where
    :func:`_whole` would say more, but for letters whose case folds into another letter."""
    key = " ".join(phrase.lower().split())
    compound = " " not in phrase and "-" in phrase
    # words (not one compound) go on only where written twice or more: most are not
    if not key or (not compound and flat.count(key) < 2):
        return False
    last = key.rsplit(" ", 1)[-1]
    followers = []
    start = flat.find(key)
    while start >= 0:
        end = start + len(key)
        before = flat[start - 1] if start else " "
        after = flat[end] if end < len(flat) else " "
        if _is_word(before) or _is_word(after) or after == "-":
            start = flat.find(key, start + 1)  # inside a longer word: not a use
            continue
        follower = _FOLLOWER.match(flat, end)
        if follower is None or follower.group(1) in ENGLISH_STOP_WORDS:
            return False
        if follower.group(1) == last:  # a name never says its last word twice
            return False
        followers.append(follower.group(1).removesuffix("s"))
        start = flat.find(key, follower.end())
    if not followers:
        return False
    return compound or (len(followers) >= 2 and len(set(followers)) == 1)


# a paper and its phrases come back under reader after reader (20,000 readers' digests name
# ~1.1 million, a third of them distinct); entries share their paper's text (_text_of), and a
# daemon keeps the cache for good: at most 16,384 texts of ~1.5 KB (~25 MB), a few MB as used
@lru_cache(maxsize=16384)
def _said_whole(phrase: str, text: str) -> str:
    """The key phrase as a reader reads it: the whole name it starts, where the paper only
    writes it as the start of one (:func:`_whole`, asked only where :func:`_may_go_on`)."""
    return _whole(phrase, text) if _may_go_on(phrase, _flat(text)) else phrase


@lru_cache(maxsize=4096)  # a paper's picks in one chunk of readers share it
def _flat(text: str) -> str:
    """The text lowercased, its spaces made single: what the quick looks before a pattern read."""
    return " ".join(text.lower().split())


@lru_cache(maxsize=4096)
def _single_spaced(text: str) -> str:
    """The text as written, its spaces made single: :func:`_flat` before lowercasing."""
    return " ".join(text.split())


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


# a use of a phrase goes on with a word: one space, then a letter (the pattern of _whole)
_FOLLOWER = re.compile(r" ([^\W\d_][\w-]*)")


def _whole(phrase: str, text: str) -> str:
    """``phrase`` with the word the paper writes after it wherever it writes it: a hyphenated
    compound every time followed (one space, same sentence) by a word that is no stop word, or
    words followed by the same word twice or more, is said with the word after its first use,
    as written ("Vision-Language Model", "large language models"), if the last two words are a
    pair that names a topic (:func:`paper_phrases.phrase_pairs`: never "KV cache grows"). The
    phrase itself where the paper ever ends a phrase with it."""
    for _ in range(_WHOLE_WORDS):
        uses = list(_uses(phrase).finditer(text))
        followers = [m.group(1) for m in uses]
        if not uses or not all(followers):
            break
        # a hyphenated compound before a word qualifies it ("multi-robot control"); words
        # written before the same word each time, twice or more, are the start of that name
        # ("large language models"), where once may well go on alone ("KV cache size")
        compound = " " not in phrase and "-" in phrase
        same = {w.lower().removesuffix("s") for w in followers}
        if not compound and (len(uses) < 2 or len(same) > 1):
            break
        if any(w.lower() in ENGLISH_STOP_WORDS for w in followers):
            break
        # a name never says its last word twice: a text that repeats a word ("museum museum",
        # CiteULike-t's bags of words) makes no longer name of it
        if any(w.lower() == phrase.split()[-1].lower() for w in followers):
            break
        first = uses[0]
        last = re.split(r"[ -]", phrase)[-1]
        if not phrase_pairs(f"{last} {first.group(1)}", ENGLISH_STOP_WORDS):
            break
        phrase = " ".join(first.group(0).split())
    return phrase


@lru_cache(maxsize=4096)  # re's own cache keeps 512: a run's phrases overflowed it
def _uses(phrase: str) -> re.Pattern[str]:
    """The phrase as whole words (any spaces between them), and the word after it, if any."""
    pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, phrase.split())) + r"(?![\w-])"
    return re.compile(pattern + r"(?: ([^\W\d_][\w-]*))?", re.IGNORECASE)


def _one_run(first: str, second: str, text: str) -> str | None:
    """``first`` and ``second`` as one run of words in ``text``, where the end of one is the
    start of the other ("KV cache" + "cache compression"), as the paper first writes it (whole
    words, its spaces made single); None when they are not."""
    a, b = first.split(), second.split()
    for overlap in range(min(len(a), len(b)) - 1, 0, -1):
        if [w.lower() for w in a[-overlap:]] == [w.lower() for w in b[:overlap]]:
            words = a + b[overlap:]
            key, flat = " ".join(words).lower(), _flat(text)
            if key not in flat:
                return None
            written = _single_spaced(text)
            if len(written) == len(flat):  # lowercasing moved no letter: find it in the text
                return _first_use(key, flat, written)
            # e.g. "İ", two letters lowercased: a pattern (compiled once per run of words, which
            # cost 20,000 readers' digests a second where the find above costs nothing)
            found = _run_of(tuple(words)).search(text)
            return None if found is None else " ".join(found.group(0).split())
    return None


def _first_use(key: str, flat: str, written: str) -> str | None:
    """``written``'s words at the first place where ``flat`` (``written`` lowercased, the same
    length) has ``key`` as whole words: what :func:`_run_of` finds in the text."""
    start = flat.find(key)
    while start >= 0:
        end = start + len(key)
        if not (start and _is_word(flat[start - 1])) and not (
            end < len(flat) and _is_word(flat[end])
        ):
            return written[start:end]
        start = flat.find(key, start + 1)
    return None


@lru_cache(maxsize=4096)  # compiled once a run, as _uses
def _run_of(words: tuple[str, ...]) -> re.Pattern[str]:
    pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)"
    return re.compile(pattern, re.IGNORECASE)
