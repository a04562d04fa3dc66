"""A topology as text: a terminal tree, a Mermaid diagram, a Graphviz DOT graph.

Pure functions from a validated ``Topology`` to ``str`` (the CLI prints them, tests
compare them with golden files), so the output does not depend on the terminal.
Descriptions are free text: their control characters are shown escaped, on one line.
"""

from __future__ import annotations

from ringctl._printable import printable
from ringctl.topology.graph import launch_order
from ringctl.topology.schema import Edge, KernelSpec, Topology

__all__ = ["FORMATS", "render", "render_dot", "render_mermaid", "render_tree"]


def _edge_text(edge: Edge) -> str:
    text = f"{edge.port} · {edge.effective_capacity} · {edge.effective_backpressure}"
    if edge.fanout is not None:
        text += f" · {edge.fanout}"
    if edge.feedback:
        text = "feedback · " + text
    return text


def _kernel_facts(spec: KernelSpec) -> list[str]:
    facts: list[str] = [spec.effective_backend]
    if spec.persistent is not None:
        facts.append(f"persistent, ring {spec.persistent.ring}")
    if spec.replicas > 1:
        facts.append(f"×{spec.replicas}")  # noqa: RUF001 - a multiplication sign, on purpose
    if spec.restart.policy != "never":
        facts.append(f"restart {spec.restart.policy} (max {spec.restart.max_restarts})")
    return facts


def render_tree(topology: Topology) -> str:
    """Kernels in launch order with what they run, then the queues, as a text tree."""
    order = launch_order(topology)
    about = f": {printable(topology.description)}" if topology.description else ""
    lines = [topology.name + about]
    lines.append(
        f"engine {topology.engine} · {len(topology.kernels)} kernels · "
        f"{len(topology.queues)} queues"
    )
    width = max(len(k) for k in order)
    digits = len(str(len(order)))
    lines.append("├── kernels (launch order)")
    for index, kernel_id in enumerate(order):
        spec = topology.kernels[kernel_id]
        branch = "└──" if index == len(order) - 1 else "├──"
        facts = ", ".join(_kernel_facts(spec))
        text = f"{index + 1:>{digits}}. {kernel_id:<{width}}  {spec.entry}  [{facts}]"
        if spec.depends_on:
            text += f"  after {', '.join(spec.depends_on)}"
        lines.append(f"│   {branch} {text}".rstrip())
        if spec.description:
            below = "│   " if index < len(order) - 1 else "    "
            lines.append(f"│   {below}{' ' * (digits + 2)}{printable(spec.description)}")
    lines.append("└── queues")
    if not topology.queues:
        lines.append("    └── (none)")
    labels = [f"{edge.producer}.{edge.port} → {edge.to}" for edge in topology.queues]
    label_width = max((len(label) for label in labels), default=0)
    for index, (edge, label) in enumerate(zip(topology.queues, labels, strict=True)):
        branch = "└──" if index == len(topology.queues) - 1 else "├──"
        policy = f"capacity {edge.effective_capacity}, {edge.effective_backpressure}"
        if edge.fanout is not None:
            policy += f", {edge.fanout}"
        if edge.feedback:
            policy += ", feedback"
        ends = (topology.kernels.get(edge.producer), topology.kernels.get(edge.to))
        if all(end is not None and end.persistent is not None for end in ends):
            policy = "ring to ring (no Python in between)"
        lines.append(f"    {branch} {label:<{label_width}}  {policy}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def render_mermaid(topology: Topology) -> str:
    """A fenced ``mermaid`` block: paste it into Markdown (GitHub, GitLab, MkDocs) and it renders.

    Node ids are ``k1``, ``k2``... rather than kernel ids, because Mermaid reserves
    words such as ``end`` and mis-reads some ids with ``-``.
    """
    node = {kernel_id: f"k{index + 1}" for index, kernel_id in enumerate(topology.kernels)}
    lines = ["```mermaid", "flowchart LR"]
    lines.append(f"    %% {topology.name}: launch order {', '.join(launch_order(topology))}")
    for kernel_id, spec in topology.kernels.items():
        facts = ", ".join(_kernel_facts(spec))
        about = f"<br/>{printable(spec.description)}" if spec.description else ""
        label = _mermaid_text(f"{kernel_id}<br/>{spec.entry}<br/>[{facts}]{about}")
        lines.append(f'    {node[kernel_id]}["{label}"]')
    for edge in topology.queues:
        arrow = "==>" if edge.feedback else "-->"
        label = _mermaid_text(_edge_text(edge))
        lines.append(f'    {node[edge.producer]} {arrow}|"{label}"| {node[edge.to]}')
    for kernel_id, spec in topology.kernels.items():
        for dep in spec.depends_on:
            lines.append(f'    {node[kernel_id]} -.->|"depends on"| {node[dep]}')
    lines.append("```")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render_dot(topology: Topology) -> str:
    """Graphviz DOT (``ringctl graph f.yaml --format dot | dot -Tsvg > f.svg``)."""
    lines = [f"digraph {_dot_text(topology.name)} {{"]
    lines.append("    rankdir=LR;")
    lines.append('    node [shape=box, style=rounded, fontname="Helvetica"];')
    lines.append('    edge [fontname="Helvetica", fontsize=10];')
    lines.append(f"    // launch order: {', '.join(launch_order(topology))}")
    for kernel_id, spec in topology.kernels.items():
        facts = ", ".join(_kernel_facts(spec))
        label = f"{kernel_id}\n{spec.entry}\n[{facts}]"
        if spec.description:
            label += f"\n{printable(spec.description)}"
        lines.append(f"    {_dot_text(kernel_id)} [label={_dot_text(label)}];")
    for edge in topology.queues:
        style = ", style=bold" if edge.feedback else ""
        lines.append(
            f"    {_dot_text(edge.producer)} -> {_dot_text(edge.to)} "
            f"[label={_dot_text(_edge_text(edge))}{style}];"
        )
    for kernel_id, spec in topology.kernels.items():
        for dep in spec.depends_on:
            lines.append(
                f"    {_dot_text(kernel_id)} -> {_dot_text(dep)} "
                '[label="depends on", style=dashed, color=gray40];'
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS = {"tree": render_tree, "mermaid": render_mermaid, "dot": render_dot}


def render(topology: Topology, fmt: str) -> str:
    return FORMATS[fmt](topology)
