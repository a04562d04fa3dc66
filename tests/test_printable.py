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


def test_a_long_list_of_names_is_cut_with_a_count() -> None:
    from ringctl._printable import few

    assert few(["a", "b"]) == "a, b"
    names = [f"k{i}" for i in range(5000)]
    assert few(names) == "k0, k1, k2, k3, k4, k5, k6, k7, k8, k9 and 4990 more"
