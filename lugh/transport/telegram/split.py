"""Split a long message into parts Telegram accepts: at most 4096 UTF-16 units of text each.

Telegram counts the text after HTML parsing, in UTF-16 code units. A cut never falls inside a
tag, an entity (`&amp;`) or a character (so never between the halves of a surrogate pair); tags
open at the cut are closed at the end of the part and reopened at the start of the next, so a
`<pre><code class="language-diff">` block continues as a code block. Cuts prefer a line break,
then a space, in the second half of a part.
"""

from __future__ import annotations

import html
import re
from typing import Any
from dataclasses import dataclass

MAX_UNITS = 4096

_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*>|&(?:#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z]+);")


@dataclass(frozen=True)
class _Atom:
    raw: str
    units: int  # UTF-16 units of text this atom shows (0 for a tag)
    tag: str = ""  # lower-case tag name for tags
    closing: bool = False
    char: str = ""  # the character shown, for text atoms


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, is_html: bool = True, limit: int = MAX_UNITS) -> list[str]:
    """`text` as parts of at most `limit` units each; one part when it already fits."""
    atoms = _atoms(text, is_html)
    if sum(a.units for a in atoms) <= limit:
        return [text]
    parts: list[str] = []
    open_tags: list[_Atom] = []
    start = 0
    while start < len(atoms):
        cut = _cut(atoms, start, limit)
        reopened = [t.raw for t in open_tags]
        for atom in atoms[start:cut]:
            if atom.tag and atom.closing:
                open_tags.pop()
            elif atom.tag:
                open_tags.append(atom)
        closing = [f"</{t.tag}>" for t in reversed(open_tags)] if cut < len(atoms) else []
        parts.append("".join([*reopened, *(a.raw for a in atoms[start:cut]), *closing]))
        start = cut
    return parts


def split_payload(
    method: str, payload: dict[str, Any], limit: int = MAX_UNITS
) -> list[dict[str, Any]]:
    """One Bot API call as the calls that deliver it: a long sendMessage becomes several, the
    reply markup on the last; a long edit keeps its first part (a message edits into one)."""
    text = payload.get("text")
    if method not in ("sendMessage", "editMessageText") or not isinstance(text, str):
        return [payload]
    parts = split_text(text, str(payload.get("parse_mode", "")).upper() == "HTML", limit)
    if len(parts) == 1:
        return [payload]
    if method == "editMessageText":
        return [{**payload, "text": parts[0]}]
    bare = {k: v for k, v in payload.items() if k != "reply_markup"}
    return [*({**bare, "text": part} for part in parts[:-1]), {**payload, "text": parts[-1]}]


def _cut(atoms: list[_Atom], start: int, limit: int) -> int:
    """The index after the last atom of the part that begins at `start`."""
    units, end = 0, start
    while end < len(atoms) and units + atoms[end].units <= limit:
        units += atoms[end].units
        end += 1
    if end == len(atoms):
        return end
    cut = _preferred_break(atoms, start, end, limit) or end
    while cut > start + 1 and atoms[cut - 1].tag and not atoms[cut - 1].closing:
        cut -= 1  # an opening tag right at the cut belongs to the next part
    if not any(a.units for a in atoms[start:cut]):
        cut = end
    while cut < len(atoms) and atoms[cut].tag and atoms[cut].closing:
        cut += 1  # so is not a closing tag: it ends this one
    return cut


def _preferred_break(atoms: list[_Atom], start: int, end: int, limit: int) -> int | None:
    for wanted in ("\n", " "):
        units = sum(a.units for a in atoms[start:end])
        for index in range(end - 1, start, -1):
            if units < limit // 2:
                break
            if atoms[index].char == wanted:
                return index + 1
            units -= atoms[index].units
    return None


def _atoms(text: str, is_html: bool) -> list[_Atom]:
    if not is_html:
        return [_Atom(c, utf16_units(c), char=c) for c in text]
    atoms: list[_Atom] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        atoms.extend(_Atom(c, utf16_units(c), char=c) for c in text[pos : match.start()])
        if match.group(2):
            atoms.append(_Atom(match.group(0), 0, match.group(2).lower(), match.group(1) == "/"))
        else:
            shown = html.unescape(match.group(0))
            atoms.append(_Atom(match.group(0), utf16_units(shown), char=shown))
        pos = match.end()
    atoms.extend(_Atom(c, utf16_units(c), char=c) for c in text[pos:])
    return atoms
