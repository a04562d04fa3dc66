"""``printable``: control characters shown escaped, everything else as it is."""

from __future__ import annotations

from ringctl._printable import printable


def test_controls_and_bidi_overrides_are_escaped() -> None:
    text = "A\x1b]0;t\x07B\x1b[2JC\rD\x00E\u202eF\x9bG\x7f"
    assert printable(text) == r"A\x1b]0;t\x07B\x1b[2JC\rD\x00E\u202eF\x9bG\x7f"


def test_letters_of_any_script_and_plain_text_stay() -> None:
    text = "ünïcode 日本語 עברית emoji 🙂 [brackets] \\backslash"
    assert printable(text) is text


def test_lines_keeps_newlines_and_tabs_only() -> None:
    assert printable("a\tb\nc\rd") == r"a\tb\nc\rd"
    assert printable("a\tb\nc\rd", lines=True) == "a\tb\nc\\rd"
