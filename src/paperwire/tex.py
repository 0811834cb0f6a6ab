"""Titles and abstracts as a reader reads them, from the TeX arXiv metadata is written in.

arXiv's feeds carry titles and abstracts as their authors typed them for LaTeX:
``\\emph{DMol}``, ``$1.5\\%$``, ``p$<$0.001``, ``$\\Pi$-NeSy``, ``XOR$-$CNF``. A digest has no
MathJax, so what can be said in plain characters is (for display, and for the keys that find
one paper under two ids, rank/twins.py: the stored text, and the ranking, keep the TeX):
text-style commands give their text, ``\\%`` and its kind their character, and a ``$…$`` span
whose every command has a character here (Greek letters, ×, ≤, ∼, …) is written out. A span with
any other command (``\\frac``, ``\\sqrt``, ``\\tilde``) is left as it was, whole: half-converted
math would read worse than TeX. Accents (``Schr\\"odinger``) were decoded when the feed was read
(:func:`paperwire.paper.clean_text`).

Not pylatexenc: it reads a whole text as LaTeX, so an abstract's plain "a 50% drop" ends at the
"%" (a comment), "R&D" loses its "&" and "costs $5 and $10" turns into math; arXiv text is
mostly not TeX, and only the spans above are converted.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from .paper import safe_chars, tex_letters

_GREEK = dict(
    zip(
        [
            "alpha",
            "beta",
            "gamma",
            "delta",
            "epsilon",
            "zeta",
            "eta",
            "theta",
            "iota",
            "kappa",
            "lambda",
            "mu",
            "nu",
            "xi",
            "pi",
            "rho",
            "sigma",
            "tau",
            "upsilon",
            "phi",
            "chi",
            "psi",
            "omega",
            "Gamma",
            "Delta",
            "Theta",
            "Lambda",
            "Xi",
            "Pi",
            "Sigma",
            "Phi",
            "Psi",
            "Omega",
        ],
        "αβγδεζηθικλμνξπρστυφχψωΓΔΘΛΞΠΣΦΨΩ",
        strict=True,
    )
)
_SYMBOLS: dict[str, str] = {
    **_GREEK,
    "varepsilon": "ε",
    "varphi": "φ",
    "vartheta": "ϑ",
    "ell": "ℓ",
    "times": "×",
    "cdot": "·",
    "sim": "∼",
    "approx": "≈",
    "pm": "±",
    "mp": "∓",
    "le": "≤",
    "leq": "≤",
    "ge": "≥",
    "geq": "≥",
    "neq": "≠",
    "ne": "≠",
    "ll": "≪",
    "gg": "≫",
    "in": "∈",
    "notin": "∉",
    "subset": "⊂",
    "subseteq": "⊆",
    "infty": "∞",
    "to": "→",
    "rightarrow": "→",
    "leftarrow": "←",
    "Rightarrow": "⇒",
    "mid": "|",
    "colon": ":",
    "setminus": "∖",
    "vert": "|",
    "Vert": "‖",
    "lVert": "‖",
    "rVert": "‖",
    "lvert": "|",
    "rvert": "|",
    "langle": "⟨",
    "rangle": "⟩",
    "lfloor": "⌊",
    "rfloor": "⌋",
    "lceil": "⌈",
    "rceil": "⌉",
    "ldots": "…",
    "cdots": "⋯",
    "dots": "…",
    "log": "log",
    "ln": "ln",
    "exp": "exp",
    "min": "min",
    "max": "max",
    "deg": "deg",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "lim": "lim",
    "sup": "sup",
    "inf": "inf",
    "det": "det",
    "dim": "dim",
    "arg": "arg",
    "partial": "∂",
    "nabla": "∇",
    "sum": "∑",
    "prod": "∏",
    "forall": "∀",
    "exists": "∃",
    "star": "⋆",
    "ast": "∗",
    "prime": "′",
}
# commands whose one argument is shown as it is: \emph{DMol}, $\texttt{ORAL}$, $\mathbb{F}_q$
_STYLE = re.compile(
    r"\\(?:emph|textbf|textit|texttt|textsc|textrm|textsf|textup|textnormal|underline|"
    r"mathrm|mathbf|mathit|mathsf|mathtt|mathbb|mathcal|mathnormal|boldsymbol|text|mbox|"
    r"operatorname)\s*\{([^{}$\\]*)\}"
)
_UNICODE = re.compile(r"\\unicode\{x([0-9A-Fa-f]{1,6})\}")
# operators written as words (the commands that are their own text): "n\log^2 n" is
# "n log^2 n", not "nlog^2 n"
_OPERATORS = frozenset(name for name, text in _SYMBOLS.items() if name == text)
# text-mode TeX outside formulas: a tie "~" between two words ("Chain-of-Thought~(CoT)",
# "Fig.~3"; not "~10x", approximately, nor a URL's "/~user"), a control space ("i.e.,\ they"),
# the quotes ``...'' and a few text symbols
_TIE = re.compile(r"(?<=[\w.,;:)\]])~(?=[^\s~])")
_CONTROL_SPACE = re.compile(r"\\[ ,;:!]")
_TEXT_SYMBOL = re.compile(
    r"\\(textregistered|texttrademark|textcopyright|copyright|textdegree)(?![A-Za-z])(?:\{\})?"
)
_TEXT_SYMBOLS = {
    "textregistered": "®",
    "texttrademark": "™",
    "textcopyright": "©",
    "copyright": "©",
    "textdegree": "°",
}
_ESCAPED = re.compile(r"\\([%&_#${}])")
# one inline formula on one line, "$" not escaped, no space just inside either "$": a "$"
# an author left unescaped ("costs $5 and $10") is no formula
_MATH = re.compile(r"(?<!\\)\$(?!\s)([^$\n]{1,200}?)(?<![\s\\])\$")
_COMMAND = re.compile(r"\\([A-Za-z]+)(?![A-Za-z])")
_SPACING = re.compile(r"\\[,;:! ]|~")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?")
# a sub- or superscript's group: x_{num} is x_num, F_{2^m} is F_(2^m), not F_2^m
_SCRIPT_GROUP = re.compile(r"([_^])\{([^{}\\]*)\}")
_SIMPLE_GROUP = re.compile(r"(?<!\\)\{([^{}\\]*)\}")
_LEFT_OVER = re.compile(r"\\[^%&_#${}]|(?<!\\)[{}]")
# sizes of delimiters say nothing in plain text: \left( is "(", \right. (no delimiter) nothing
_SIZED = re.compile(
    r"\\(?:left|right|big|Big|bigg|Bigg)[lr]?\s*(\.|(?=[(\[|)\]/]|\\[{}|]|\\[A-Za-z]))"
)
# \frac{a}{b} as a/b and \sqrt{x} as √x (their groups written in parentheses past one
# symbol): innermost first, arguments without braces inside
_GROUP = r"\{((?:[^{}]|\{[^{}]*\})*)\}"  # one level of braces inside: \frac{a}{{tr}(x)}
_FRAC = re.compile(rf"\\[dt]?frac\s*{_GROUP}\s*{_GROUP}")
_SQRT = re.compile(rf"\\sqrt\s*{_GROUP}")
# text-mode references, each with what is shown for it: a link its text, a URL itself, a
# citation nothing (it names a bibliography key no reader has)
_REFERENCES = [
    (re.compile(pattern), shown)
    for pattern, shown in (
        (r"\\href\s*\{[^{}]*\}\s*\{([^{}]*)\}", r"\1"),
        (r"\\url\s*\{([^{}]*)\}", r"\1"),
        (r"\s*~?\\(?:cite|citep|citet|citealp|citeauthor)\*?\s*(?:\[[^\]]*\]\s*)*\{[^{}]*\}", ""),
    )
]


def written_out(text: str) -> str:
    """``text`` with the TeX a reader cannot read written out, where it can be (see above)."""
    if "\\" not in text and "$" not in text and not _TEXT_MARKS.search(text):
        return text
    text = _UNICODE.sub(lambda m: _char(m.group(1)), text)
    for pattern, shown in _REFERENCES:
        text = pattern.sub(shown, text)
    # formulas written out whole or left whole; the text between them has its styles and
    # escapes written out (not a formula left as TeX: "\\frac{a}{\\mathrm{tr}}" half-converted
    # reads worse than either)
    out, last = [], 0
    for match in _MATH.finditer(text):
        out += [_plain(text[last : match.start()]), _formula(match)]
        last = match.end()
    out.append(_plain(text[last:]))
    return "".join(out)


# what text-mode TeX without a backslash starts with: most abstracts have none of these
_TEXT_MARKS = re.compile(r"~|``|''")


def _plain(text: str) -> str:
    if "\\" in text:
        text = tex_letters(text)  # stored before ingest wrote them out
        text = _ESCAPED.sub(r"\1", _styled(text, "\\1"))
        text = _TEXT_SYMBOL.sub(lambda m: _TEXT_SYMBOLS[m.group(1)], text)
        text = _CONTROL_SPACE.sub(" ", text)
    if "~" in text:
        text = _TIE.sub(" ", text)
    if "``" in text or "''" in text:
        text = text.replace("``", "“").replace("''", "”")
    return text


# a digest's titles and abstracts are written out once each, however often a template asks;
# keys (rank/twins.py) call :func:`written_out`, so a corpus's 60,000 abstracts do not crowd it
readable = functools.lru_cache(maxsize=8192)(written_out)


def _styled(text: str, keep: str) -> str:
    """Each text-style command replaced by ``keep`` (its argument, braced or not)."""
    for _ in range(3):  # \textbf{\emph{x}}: innermost first
        text, found = _STYLE.subn(keep, text)
        if not found:
            break
    return text


def _char(code: str) -> str:
    point = int(code, 16)
    if not 0x20 <= point <= 0x10FFFF or 0xD800 <= point <= 0xDFFF:
        return ""
    char = chr(point)
    # a space of any kind is a space, and an invisible one nothing: ingest collapsed the
    # text's own, and a line separator (U+2028) would start a line in a text e-mail
    category = unicodedata.category(char)
    if category in ("Zs", "Zl", "Zp"):
        return " "
    if category == "Cf":
        return ""
    # none that ingest drops (a bidi override, a C1 control): the text was cleaned before this
    return safe_chars(char)


def _formula(match: re.Match[str]) -> str:
    """One ``$…$`` span written out, or as it was when a command in it has no character here."""
    # braced, so "\mu\text{g}" stays two things: "\mu{g}", not the command "\mug"
    body = _DEGREES.sub("°", _styled(match.group(1), "{\\1}"))
    body = _SPACING.sub(" ", _SIZED.sub("", body))  # "\\left(" is "(", "\\right." nothing
    for _ in range(3):  # \frac{1}{\sqrt{n}}: the inner one first
        body, roots = _SQRT.subn(lambda m: f"√{_grouped(m.group(1))}", body)
        body, fracs = _FRAC.subn(lambda m: f"{_grouped(m.group(1))}/{_grouped(m.group(2))}", body)
        if not fracs + roots:
            break
    unknown = False

    def command(m: re.Match[str]) -> str:
        nonlocal unknown
        name = m.group(1)
        if name not in _SYMBOLS:
            unknown = True
            return m.group(0)
        if name in _OPERATORS:  # a word beside a letter or digit: "n log^2 n", "2 log n"
            before = body[m.start() - 1 : m.start()]
            after = body[m.end() : m.end() + 1]
            return (" " if before.isalnum() else "") + name + (" " if after.isalnum() else "")
        return _SYMBOLS[name]

    body = _COMMAND.sub(command, body)
    if unknown:
        return match.group(0)
    for _ in range(3):  # ${F}$, R^{2}: the braces only group
        body, scripts = _SCRIPT_GROUP.subn(_script, body)
        body, found = _SIMPLE_GROUP.subn(r"\1", body)
        found += scripts
        if not found:
            break
    if _LEFT_OVER.search(body):
        return match.group(0)
    return _ESCAPED.sub(r"\1", body).strip()


def _grouped(inner: str) -> str:
    """A fraction's or root's argument: as it is when one symbol or word, else in parentheses
    (d/δ, but (n+1)/2)."""
    inner = inner.strip()
    return inner if re.fullmatch(r"[√\\]?[\w.]+", inner) else f"({inner})"


def _script(match: re.Match[str]) -> str:
    mark, inner = match.groups()
    return f"{mark}{inner}" if re.fullmatch(r"[\w.]+", inner) else f"{mark}({inner})"
