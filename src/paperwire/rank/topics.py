"""What counts as a topic: a phrase a reader could type into a search box.

Reasons ("about “KV cache”"), the profile page's terms and a reader's interests are phrases, and
abstracts are full of phrases that name no topic: "paper presents", "important benefits",
"models spanning", "underscoring substantial", "fine-grained". Paperwire ships no part-of-speech
tagger (and an abstract's key phrases are read a few words at a time, without their sentence),
so a phrase is judged by its words, as written:

* a **boilerplate verb** anywhere ("presents", "spanning", "underscoring", "achieves") makes it
  a piece of a sentence, not a name, and so does a word that joins or opens clauses
  ("Despite progress", "loss instead"); so does a generic subject followed by anything ("methods
  rely", "results suggest", "work offers");
* its **head** (the last word; of a hyphenated compound, the last part) must be noun-like: not an
  adjective ("smaller", "substantial", "neural" in "graph neural"), an adverb, a participle
  ("time-consuming", "fine-grained", "model-free", "transformer-based") or a verb form;
* at least one word must be **topical**: not a generic word of academic prose ("work",
  "results", "benefits", "important", "novel", "approach", "range").

Words nobody lists here count as topical nouns: "KV cache", "GPTQ", "speculative decoding" pass
without being named. The lists are of English academic prose, not of any one field; each entry
was a reason or a profile term in the demo or the reader evaluation's real abstracts
(benchmarks/README.md, "Reasons a reader recognises").
"""

from __future__ import annotations

import re
from functools import lru_cache

# Bump when what is_topic says of a phrase changes (its lists or rules): each paper's word
# pairs are judged once, when it is analysed (paper_phrases.phrase_pairs), and are then judged
# again.
RULES_VERSION = 5


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Generic nouns of academic prose: a phrase made only of these, adjectives and verbs names no
# topic ("important benefits", "recent advancements", "model size", "use cases").
GENERIC = _words(
    """
    abilities ability ablation account accuracy adoption advance advancement advancements
    advances advantage advantages al algorithm algorithms alternative alternatives amount
    analyses analysis application applications approach approaches architecture architectures
    area areas art aspect aspects baseline baselines basis benchmark benchmarks benefit
    benefits capabilities capability capacity case cases challenge challenges characteristics
    choice choices community comparison comparisons component components concern concerns
    condition conditions consideration considerations contribution contributions core cost
    costs dataset datasets decrease decreases degradation degree demand demands deployment
    design designs detail details development difference differences direction directions
    domain domains effect effectiveness effects efficiency effort efforts element elements end
    environment environments et evaluation evaluations evidence example examples expense
    experiment experiments extent fact factor factors failure failures families family fashion
    feature features finding findings focus form forms fraction framework frameworks function
    functions gain gains gap gaps goal goals ground idea ideas impact impacts implication
    implications importance improvement improvements increase increases information innovation
    innovations insight insights instance instances issue issues kind kinds lack level levels
    limitation limitations literature lot lots manner means measure measures method
    methodology methods metric metrics model models modification modifications need needs
    number numbers observation observations one ones option options order outcome outcomes
    overview page paper papers paradigm part parts performance performances perspective
    perspectives phase phases practice practices principle principles problem problems process
    processes progress project projects promise properties property purpose purposes quality
    quantity question questions range ranges rate rates reason reasons reduction reductions
    regard requirement requirements research researcher researchers resource resources respect
    result results review role roles scale scales scenario scenarios scheme schemes scope
    score scores set sets setting settings shortcoming shortcomings size sizes solution
    solutions source sources stage stages stakes state step steps strategies strategy strength
    strengths structure structures studies study subset success suite superiority survey
    system systems task tasks taxonomy technique techniques term terms test tests time times
    tool tools total trend trends truth type types understanding usage use user users utility
    validation value values variant variants variety version versions view views way ways work
    works year years
    homepage homepages webpage webpages website websites
    """
)

# Verb forms of academic prose: a phrase holding one is a piece of a sentence ("work presents",
# "models spanning", "underscoring substantial", "generate videos"), never a topic's name.
VERBS = _words(
    """
    achieve achieved achieves achieving address addressed addresses addressing aim aimed
    aiming aims alleviate alleviates alleviating allow allowed allowing allows applies apply
    applying argue argues arguing become becomes becoming bring brings capturing compare
    compared compares comparing completes comprise comprises comprising conclude concludes
    confirm confirmed confirming confirms consider considered considering considers contain
    contained containing contains contribute contributed contributes contributing delivers
    demonstrate demonstrated demonstrates demonstrating describe described describes
    describing discuss discussed discusses discussing emphasize emphasizes emphasizing employ
    employed employing employs enable enabled enables enabling enhance enhances enhancing
    ensure ensures ensuring establish established establishes establishing examine examined
    examines examining exhibit exhibited exhibiting exhibits explore explored explores
    exploring facilitate facilitates facilitating focuses generate generates help helps
    highlight highlighted highlighting highlights illustrate illustrates illustrating improve
    improves improving include included includes including indicate indicated indicates
    indicating integrates introduce introduced introduces introducing investigate investigated
    investigates investigating involve involved involves involving leverage leveraged
    leverages leveraging lie lies maintain maintained maintaining maintains makes mitigate
    mitigates mitigating obtain obtained obtaining obtains offer offered offering offers
    outperform outperformed outperforming outperforms overcome overcomes overcoming predicts
    present presented presenting presents propose proposes proposing provide provided provides
    providing reduce reduces reducing relied relies rely relying remain remained remaining
    remains require required requires requiring reveal revealed revealing reveals serve serves
    shedding showcase showcased showcases showcasing shown shows struggle struggles suggest
    suggested suggesting suggests surpass surpassed surpasses surpassing tackle tackles
    tackling takes tunes underscore underscored underscores underscoring understand using
    utilize utilized utilizes utilizing validate validates yielding
    affecting compresses encodes grows integrating optimizes produce produced produces producing
    appear appeared appears arise arises arose behave behaves depend depended depends differ
    differs emerge emerged emerges exceeds exist existed exists failed fails holds lack lacks
    leads learn learns occur occurred occurs operate operates perform performs persist persists
    seem seemed seems varies vary yields
    """
)

# Words that join or open clauses (prepositions, conjunctions, sentence adverbs) that the
# hasher keeps, and those it drops, for a phrase judged without them: a phrase holding one
# alone spans two pieces of a sentence ("Despite progress", "loss instead", "vs Human"); in a
# hyphenated compound it is part of a name ("max-plus").
CONNECTIVES = _words(
    """
    accordingly additionally alongside although amid amidst among amongst atop beneath besides
    concerning consequently conversely despite furthermore instead likewise nonetheless
    notwithstanding plus regarding regardless though toward towards underneath unless unlike
    upon versus via vs whereas whether while whilst
    """
)

# Words that open a clause when a phrase starts with them: "methods face", "results indicate".
SUBJECTS = _words(
    """
    analysis approach approaches contributions experiments findings framework method methods
    paper results study work
    """
)

# Adjectives: those of academic prose that qualify anything ("novel", "important", "key"), and
# those whose form does not give them away (no suffix of ADJECTIVE_ENDINGS: "sparse", "robust").
ADJECTIVES = _words(
    """
    able accurate additional advanced agnostic appropriate arbitrary available average aware best
    better broad capable central certain challenging close cold common comparable competitive
    complex comprehensive computational considerable consistent conventional costly critical
    crucial current deep dense detailed different difficult distinct diverse dynamic early
    easy effective efficient empirical enhanced entire essential existing expensive
    experimental extensive fast faster fine forward free full fundamental further future
    gaussian general generic good great greater hard high higher holistic hot hybrid important
    improved intricate key large larger late lightweight like linear long low lower main major
    minor modern much multiple natural near neat new notable novel numerical numerous open
    optimal original overall particular past pivotal possible potential powerful practical
    precise previous primary prior promising proposed rapid ready real recent relevant
    reliable remarkable rich rigorous robust scalable several short significant simple simpler
    single small smaller sparse specific standard strong stronger substantial subtle suitable
    superior systematic theoretical thorough tight total traditional typical unified unique
    unlike useful valuable various vast vital whole wide widespread worse worst
    """
)
# The comparative and superlative of these are adjectives too: smaller, cheapest, bigger.
_GRADABLE = _words(
    """
    big broad busy cheap clean close cold dense easy fast few fine great hard heavy high large
    late light long low narrow new noisy old quick rare rich safe sharp short simple slow
    small smart sparse steep strong thin tight tiny weak wide young
    """
)
# Present participles used as adjectives, not as names of an activity ("learning", "pruning").
ING_ADJECTIVES = _words(
    """
    appealing challenging compelling competing consuming corresponding demanding emerging
    encouraging evolving existing following growing increasing interesting leading missing
    ongoing outstanding performing preceding pressing prevailing promising remaining rising
    surprising underlying varying
    """
)
# A hyphenated compound ending in one of these qualifies a noun it leaves out: "transformer-
# based", "test-time", "hardware-aware", "memory-bound", "task-specific", "large-scale".
COMPOUND_TAILS = _words(
    """
    agnostic aware based bound centric conditioned constrained consuming dependent driven
    efficient enabled free friendly generated grained guided independent informed intensive
    level like oriented powered ready related scale specific time trained tuned wise
    """
)
# Nouns that end like adjectives (-al, -ic, -ive, -ly, -able): "retrieval", "metric".
_NOUN_EXCEPTIONS = _words(
    """
    additive animal anomaly approval archive arithmetic arrival assembly butterfly cable
    capital channel characteristic clinic critic crystal derivative diagnostic directive
    disposal drive epidemic executive explosive fabric family functional heuristic hospital
    incentive individual initiative integral interval journal locomotive logic magic manual
    material mechanic metal metric mimic monopoly mosaic motive music narrative negative
    objective observable pandemic panel plastic polynomial portal positive primitive principal
    proposal removal reply representative republic retrieval rhetoric rival signal supply
    survival syllable table tactic terminal topic traffic trial tutorial variable
    """
)
# Prefixes written as a word of their own ("multi-step", "cross-domain"): never a topic alone.
PREFIXES = _words("anti auto co cross inter intra multi non over post pre re self semi sub un")
ADJECTIVE_ENDINGS = ("ous", "ful", "less", "ive", "able", "ible", "al", "ic", "ly")

# Compounds of academic prose that qualify anything: "state-of-the-art", "real-world".
COMPOUNDS = _words(
    """
    built-in cutting-edge end-to-end follow-up high-level high-quality in-depth large-scale
    long-standing low-level off-the-shelf plug-and-play real-life real-world small-scale
    so-called state-of-the-art step-by-step trade-off trade-offs up-to-date well-known
    """
)

_WORDS = re.compile(r"[^\W_]+", re.UNICODE)


def _split(phrase: str) -> list[tuple[str, bool]]:
    """(word, whether it is the last part of a hyphenated compound) per word, lowercased."""
    out: list[tuple[str, bool]] = []
    for chunk in phrase.lower().split():
        parts = _WORDS.findall(chunk)
        hyphenated = "-" in chunk and len(parts) > 1
        out += [(p, hyphenated and i == len(parts) - 1) for i, p in enumerate(parts)]
    return out


def _comparative(word: str) -> bool:
    """ "smaller", "bigger", "easier", "largest": a gradable adjective's -er / -est form."""
    for ending in ("er", "est"):
        if word.endswith(ending) and len(word) > len(ending) + 2:
            stem = word[: -len(ending)]
            stems = {stem, stem + "e", stem[:-1], stem[:-1] + "y" if stem.endswith("i") else ""}
            if stems & _GRADABLE:
                return True
    return False


def adjective_like(word: str) -> bool:
    """Whether a word reads as an adjective, adverb or participle rather than a noun."""
    if word in ADJECTIVES or word in ING_ADJECTIVES or _comparative(word):
        return True
    if word in _NOUN_EXCEPTIONS or any(c.isdigit() for c in word):
        return False
    if len(word) > 4 and word.endswith("ed") and not word.endswith("eed"):
        return True  # a participle: "fine-grained", "pre-trained", "proposed"
    return word in _PARTICIPLES or (len(word) > 4 and word.endswith(ADJECTIVE_ENDINGS))


_PARTICIPLES = _words("driven given hidden proven used written")


def topical(word: str) -> bool:
    """Whether a word can carry a topic: not generic, not a prefix, not an adjective."""
    return not (word in GENERIC or word in PREFIXES or word.isdigit() or adjective_like(word))


@lru_cache(maxsize=100_000)  # the same pairs come back in paper after paper
def is_topic(phrase: str, stop_words: frozenset[str] = frozenset()) -> bool:
    """Whether a phrase names a topic: no boilerplate verb, a noun-like head, a topical word.

    ``stop_words`` (the hasher's) are skipped: "quantization of the KV cache" is judged
    on "quantization", "kv", "cache"."""
    if phrase.lower() in COMPOUNDS:
        return False
    words = [(w, tail) for w, tail in _split(phrase) if w not in stop_words]
    if not words:
        return False
    if any(w in VERBS for w, _ in words):
        return False
    # a clause word standing alone, not judged away as a stop word
    alone = {w for c in phrase.lower().split() if "-" not in c for w in _WORDS.findall(c)}
    if any(w in CONNECTIVES and w in alone for w, _ in words):
        return False
    if len(words) > 1 and words[0][0] in SUBJECTS and "-" not in phrase.split()[0]:
        return False
    head, compound = words[-1]
    if (compound and head in COMPOUND_TAILS) or adjective_like(head):
        return False
    # "models spanning", "agents interacting": a plural noun and a participle is a clause
    if len(words) > 1 and head.endswith("ing") and _plural(words[-2][0]) and not compound:
        return False
    return any(topical(w) for w, _ in words)


def _plural(word: str) -> bool:
    return word.endswith("s") and not word.endswith(("ss", "us", "is", "ics", "news"))


def stands_alone(
    piece: str, stop_words: frozenset[str] = frozenset(), unwanted: bool = False
) -> bool:
    """Whether a piece of a reader's interests text is a topic of its own.

    The reader chose their words, so this is looser than :func:`is_topic`: any piece of two
    words or more that is not all adjectives stands ("tool use", "sim-to-real"); a single word
    must be a topical one ("GPTQ", "reranking"), never an adjective ("smaller", "efficient")
    or a generic word ("applications"). In the topics a reader does *not* want (``unwanted``)
    a generic word stands too: "benchmarks" or "surveys" there is a kind of paper they skip,
    where among their interests it would match everything."""
    words = [w for w, _ in _split(piece) if w not in stop_words]
    if not words or all(adjective_like(w) for w in words):
        return False
    if len(words) > 1 or topical(words[0]):
        return True
    return unwanted and words[0] in GENERIC
