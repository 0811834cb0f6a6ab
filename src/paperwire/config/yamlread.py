"""Read a YAML config one way: YAML 1.2 core-schema values, bounded, with the line of each value.

libyaml (C) tokenises the text into events; this module builds the values itself, so that

- plain scalars follow YAML 1.2 (``7:30`` and ``yes`` are strings, ``2026-01-01`` is not a date),
  whichever YAML library happens to be installed, for valid and invalid files alike;
- every key and list item keeps its line, for errors like ``subscribers.yaml:14: ...``;
- a hostile file is refused quickly: nesting deeper than :data:`MAX_DEPTH`, or aliases that
  expand to many more values than the file holds (a "billion laughs" bomb). The caller bounds
  the file's size before reading it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_DEPTH = 32
_TOO_DEEP = f"values nested deeper than {MAX_DEPTH} levels"
ALIAS_BUDGET = 10_000  # values aliases may add beyond the file's own

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_MAYBE_NOT_TEXT = frozenset("0123456789+-.~nNtTfF")  # first characters of non-strings
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")
# libyaml when PyYAML was built with it (the usual wheels are); the same events either way
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(Exception):
    """The text is not YAML, or is YAML this reader refuses; ``line`` is 1-based."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Document:
    """The values of a YAML document and the 1-based line of each key or list item in it."""

    value: Any
    lines: dict[tuple, int] = field(default_factory=dict)
    problems: list[tuple[int, tuple, str]] = field(default_factory=list)  # duplicate keys

    def line(self, loc: tuple) -> int:
        """Line of the deepest part of ``loc`` the document has (1 for the top level)."""
        for end in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return 1


def plain_scalar(text: str) -> Any:
    """A plain (unquoted) scalar by the YAML 1.2 core schema."""
    if text and text[0] not in _MAYBE_NOT_TEXT:  # most values are words: skip the patterns
        return text
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    if _INF.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.match(text):
        return math.nan
    return text


def _tagged(tag: str, text: str, line: int) -> Any:
    short = tag.removeprefix("tag:yaml.org,2002:").removeprefix("!!")
    if short == "str":
        return text
    value = plain_scalar(text)
    types: dict[str, type | tuple[type, ...]] = {
        "int": int,
        "float": (int, float),
        "bool": bool,
        "null": type(None),
    }
    expected = types.get(short)
    if expected is None:
        raise YamlError(line, f"unknown tag {tag!r} (paperwire reads plain YAML values)")
    if not isinstance(value, expected) or (short != "bool" and isinstance(value, bool)):
        raise YamlError(line, f"{text!r} is not a valid !!{short}")
    if short == "float" and isinstance(value, int | float):
        return float(value)
    return value


class _Frame:
    """A mapping or list being read; it joins its parent when it ends."""

    __slots__ = ("anchor", "container", "key", "line", "loc", "size")

    def __init__(self, container: Any, loc: tuple, anchor: str | None, line: int):
        self.container = container
        self.loc = loc
        self.anchor = anchor
        self.line = line
        self.key: Any = _NO_KEY  # a mapping's pending key
        self.size = 1  # values in this subtree, for aliases that repeat it


_NO_KEY = object()
_DROP = object()  # the value of a key written twice


def read(text: str) -> Document:
    """Parse one YAML document (an empty text gives ``None``); raises :class:`YamlError`."""
    document = Document(None)
    lines = document.lines
    anchors: dict[str, tuple[Any, int]] = {}
    stack: list[_Frame] = []
    own_values = 0
    alias_values = 0
    documents = 0

    def add(value: Any, line: int, size: int, anchor: str | None) -> None:
        nonlocal own_values
        if anchor is not None:
            anchors[anchor] = (value, size)
        if not stack:
            document.value = value
            return
        frame = stack[-1]
        frame.size += size
        if isinstance(frame.container, list):
            loc = (*frame.loc, len(frame.container))
            lines[loc] = line
            frame.container.append(value)
            return
        if frame.key is _NO_KEY:  # this value is a key
            if isinstance(value, (dict, list)):
                raise YamlError(line, "a key must be a name, not a list or a mapping")
            key: object = (
                value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
            )
            if key in frame.container:
                first = lines[(*frame.loc, key)]
                document.problems.append(
                    (line, (*frame.loc, key), f"appears twice (first on line {first})")
                )
                key = _DROP  # the first value stays, so its line and its value agree
            else:
                lines[(*frame.loc, key)] = line
            frame.key = key
            return
        if frame.key is not _DROP:
            frame.container[frame.key] = value
        frame.key = _NO_KEY

    try:
        events = yaml.parse(text, Loader=_LOADER)
        for event in events:
            kind = type(event)
            if kind is yaml.ScalarEvent:
                line = event.start_mark.line + 1
                own_values += 1
                if event.tag not in (None, "!"):
                    value = _tagged(event.tag, event.value, line)
                elif not event.style and event.implicit[0]:  # plain: libyaml says '', PyYAML None
                    value = plain_scalar(event.value)
                else:
                    value = event.value
                add(value, line, 1, event.anchor)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                line = event.start_mark.line + 1
                own_values += 1
                if len(stack) >= MAX_DEPTH:
                    raise YamlError(line, _TOO_DEEP)
                container: Any = {} if kind is yaml.MappingStartEvent else []
                parent = stack[-1] if stack else None
                if parent is None:
                    loc: tuple = ()
                elif isinstance(parent.container, list):
                    loc = (*parent.loc, len(parent.container))
                else:
                    loc = (*parent.loc, parent.key) if parent.key is not _NO_KEY else parent.loc
                stack.append(_Frame(container, loc, event.anchor, line))
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                add(frame.container, frame.line, frame.size, frame.anchor)
            elif kind is yaml.AliasEvent:
                line = event.start_mark.line + 1
                if event.anchor not in anchors:
                    raise YamlError(line, f"alias *{event.anchor} names no anchor before it")
                value, size = anchors[event.anchor]
                alias_values += size
                if alias_values > ALIAS_BUDGET + own_values:
                    raise YamlError(
                        line,
                        f"aliases expand to more than {ALIAS_BUDGET + own_values:,} values; "
                        "a config needs far fewer (an alias bomb?)",
                    )
                add(value, line, size, None)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise YamlError(
                        event.start_mark.line + 1, "a second YAML document; keep one per file"
                    )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        if "nesting depth" in problem:  # newer libyaml's own limit (far above ours) came first
            raise YamlError(mark.line + 1 if mark else 1, _TOO_DEEP) from None
        opened = exc.context_mark
        unclosed = ("end of stream", "document separator", "document indicator")
        if (
            opened is not None
            and "quoted scalar" in (exc.context or "")
            and any(word in (exc.problem or "") for word in unclosed)
        ):
            # a quote left open runs on to the end of the file: the line to fix is where it
            # opened, not the file's last line
            at = f" at line {mark.line + 1}" if mark and mark.line != opened.line else ""
            raise YamlError(
                opened.line + 1,
                f"invalid YAML: a quote that opens on this line is never closed "
                f"({exc.problem}{at})",
            ) from None
        if problem.startswith("found unknown escape character"):  # "C:\qfeeds" in YAML
            problem += " (in double quotes a backslash starts an escape: use single quotes)"
        if mark is not None and text[mark.index : mark.index + 1] == "\t" and "tab" not in problem:
            problem += " (a tab: YAML indents with spaces)"
        raise YamlError(mark.line + 1 if mark else 1, f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        # a control character: at its line, in one line (its own message is two, at line 1)
        line = text[: exc.position].count("\n") + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise YamlError(
            line, f"invalid YAML: control character U+{code:04X} is not allowed; remove it"
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError(1, f"invalid YAML: {exc}") from None
    return document
