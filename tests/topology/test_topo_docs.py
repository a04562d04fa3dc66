"""``docs/topology.md`` is generated from the models; this fails while it is stale."""

from __future__ import annotations

from pathlib import Path

from ringctl.topology.docs import render_reference

DOCS = Path(__file__).resolve().parents[2] / "docs" / "topology.md"


def test_docs_are_up_to_date() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_reference(), (
        "docs/topology.md is stale: run `python -m ringctl.topology.docs > docs/topology.md`"
    )


def test_docs_show_the_editor_schema_line() -> None:
    assert "# yaml-language-server: $schema=" in render_reference()


def test_every_type_the_reference_links_to_has_its_section() -> None:
    import re

    page = render_reference()
    sections = {m.group(1).lower() for m in re.finditer(r"^### (\w+)$", page, re.MULTILINE)}
    links = set(re.findall(r"\]\(#([\w-]+)\)", page))
    assert links - sections == set()
    assert "metricbounds" in links
