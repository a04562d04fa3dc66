"""``python -m ringctl.dashboard``: draw a saved status document (docs, screenshots, debugging).

The README screenshot is regenerated from a real run, never drawn by hand::

    ringctl up -d topologies/quickstart.yaml
    sleep 3; ringctl ps quickstart --json > /tmp/status.json
    python -m ringctl.dashboard svg /tmp/status.json -o docs/img/dashboard.svg
    ringctl down quickstart

``render`` prints a frame as text, ``plain`` the CI line, ``json`` the ``--json-stream``
line, ``metrics`` the Prometheus exposition; ``-`` reads the document from stdin.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ringctl.dashboard.plain import json_line, plain_line
from ringctl.dashboard.view import render_svg, render_text


def _load(source: str) -> Mapping[str, Any]:
    raw = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    document = json.loads(raw)
    if not isinstance(document, Mapping):
        raise ValueError("expected a JSON object, as `ringctl ps NAME --json` prints")
    return document


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ringctl.dashboard", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("format", choices=["render", "svg", "plain", "json", "metrics"])
    parser.add_argument("status", help="a status document (`ringctl ps NAME --json`), or -")
    parser.add_argument("-o", "--output", help="write here instead of stdout")
    parser.add_argument("--width", type=int, default=110, help="columns (render, svg)")
    parser.add_argument("--color", action="store_true", help="ANSI colours (render)")
    parser.add_argument("--title", default="ringctl top", help="window title (svg)")
    args = parser.parse_args(argv)
    try:
        status = _load(args.status)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.status}: {exc}", file=sys.stderr)
        return 2
    if args.format == "render":
        out = render_text(status, width=args.width, color=args.color)
    elif args.format == "svg":
        out = render_svg(status, width=args.width, title=args.title)
    elif args.format == "plain":
        out = plain_line(status) + "\n"
    elif args.format == "json":
        out = json_line(status) + "\n"
    else:
        from ringctl.dashboard.metrics import metrics_text

        out = metrics_text(status)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
