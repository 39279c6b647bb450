"""Long messages split into parts the real parser accepts, each within 4096 UTF-16 units."""

from __future__ import annotations

import html

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lugh.transport.telegram.split import split_payload, split_text
from tests.fakes.telegram import parse_html, utf16_len

_ALPHABET = st.sampled_from(list("ab xyz\n\n<>&\"'é") + ["😀", "👍", "\U0001F3FD", "中", "\u0301"])
_TAGS = ["b", "i", "u", "s", "code", "tg-spoiler", 'a href="https://example.org/?a=1&amp;b=2"',
         'span class="tg-spoiler"', "blockquote", "blockquote expandable"]


@st.composite
def html_documents(draw: st.DrawFn, depth: int = 0) -> str:
    pieces = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["text", "text", "tag", "pre"] if depth < 2 else ["text"]))
        if kind == "text":
            text = draw(st.text(_ALPHABET, min_size=1, max_size=60))
            pieces.append(html.escape(text * draw(st.integers(1, 40)), quote=False))
        elif kind == "pre":
            code = html.escape(draw(st.text(_ALPHABET, min_size=1, max_size=80)) * draw(st.integers(1, 60)))
            language = draw(st.sampled_from(["", "python", "diff"]))
            inner = f'<code class="language-{language}">{code}</code>' if language else code
            pieces.append(f"<pre>{inner}</pre>")
        else:
            tag = draw(st.sampled_from(_TAGS))
            if tag.startswith("blockquote") and depth > 0:
                tag = "b"
            inner = (html.escape(draw(st.text(_ALPHABET, min_size=1, max_size=200)), quote=False)
                     if tag == "code" else draw(html_documents(depth + 1)))  # fmt: skip
            pieces.append(f"<{tag}>{inner}</{tag.split()[0]}>")
    return "".join(pieces)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(html_documents(), st.sampled_from([64, 300, 4096]))
def test_every_part_parses_fits_and_together_they_are_the_original_text(source: str, limit: int) -> None:
    whole, _ = parse_html(source)
    parts = split_text(source, limit=limit)
    texts = [parse_html(part)[0] for part in parts]
    assert all(utf16_len(t) <= limit for t in texts)
    assert "".join(texts) == whole
    if utf16_len(whole) <= limit:
        assert parts == [source]


@given(st.text(min_size=1, max_size=3000), st.sampled_from([7, 100]))
def test_plain_text_splits_between_characters(text: str, limit: int) -> None:
    parts = split_text(text, is_html=False, limit=limit)
    assert "".join(parts) == text
    assert all(utf16_len(p) <= limit for p in parts)


def test_a_10000_character_answer_with_code_keeps_its_code_block_and_buttons_on_the_last_part() -> None:
    code = "\n".join(f"+line {n} &amp; &lt;tag&gt; 😀" for n in range(300))
    source = "<b>Review #3</b>\n" + "word " * 800 + f'<pre><code class="language-diff">{code}</code></pre>'
    markup = {"inline_keyboard": [[{"text": "Approve", "callback_data": "approve:3"}]]}
    payloads = split_payload("sendMessage", {"text": source, "parse_mode": "HTML", "reply_markup": markup})
    assert len(payloads) >= 3
    assert [("reply_markup" in p) for p in payloads] == [False] * (len(payloads) - 1) + [True]
    for payload in payloads[2:]:
        assert payload["text"].startswith('<pre><code class="language-diff">')
    assert "".join(parse_html(p["text"])[0] for p in payloads) == parse_html(source)[0]


def test_cuts_prefer_line_breaks() -> None:
    lines = [f"line {n:04d}" for n in range(1000)]
    parts = split_text("\n".join(lines), is_html=False)
    assert all(part.endswith("\n") for part in parts[:-1])
