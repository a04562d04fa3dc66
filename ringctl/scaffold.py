"""``ringctl init``: write a starter project (a topology, its kernels, their tests).

The templates ship inside the package (``ringctl/templates/<template>/``): a commented
``topology.yaml``, a ``kernels.py`` and a ``test_kernels.py``; ``templates/common/``
adds a ``pytest.ini`` (and the ``conftest.py`` it needs) unless the folder has its own.
They are written as
``<name>.yaml``, ``<module>.py`` and ``test_<module>.py`` so that two projects side by
side do not shadow each other's modules, and so that ``ringctl smoke DIR/*.yaml`` and
``pytest DIR`` pass as soon as they are written.
"""

from __future__ import annotations

import re
import shlex
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ringctl.exceptions import UserInputError

__all__ = ["TEMPLATES", "Project", "project_names", "shell_arg", "write_project"]

#: Template name -> what it shows (``ringctl init --template``).
TEMPLATES: dict[str, str] = {
    "pipeline": "a source, a transform on two replicas and a sink, in plain Python",
    "gpu": "NumPy batches through a kernel that runs on a GPU when there is one (ctx.xp)",
}

#: Files that hold (or load) pytest settings: a folder with one keeps its own.
_PYTEST_CONFIGS = ("pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "conftest.py")

#: How many messages the templates' sources send: enough to show rates, quick in CI.
_COUNT = {"pipeline": 1000, "gpu": 20}


@dataclass(frozen=True, slots=True)
class Project:
    """What ``write_project`` wrote."""

    folder: Path
    name: str
    topology: Path
    kernels: Path
    tests: Path
    extra: list[Path] = field(default_factory=list)  # pytest.ini, conftest.py

    @property
    def files(self) -> list[Path]:
        return [self.topology, self.kernels, self.tests, *self.extra]


def project_names(folder: Path, name: str | None = None) -> tuple[str, str]:
    """The topology name and the kernel module's name, from ``name`` or the folder's.

    ``My Demo!`` gives ``my-demo`` and ``my_demo_kernels``: topology names are lower
    case letters, digits and ``-``; module names must be Python identifiers.
    """
    raw = name if name is not None else folder.resolve().name
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:60].strip("-")
    if not slug:
        raise UserInputError(
            f"cannot make a topology name from {raw!r}",
            hint="pass --name with letters or digits, e.g. --name demo",
        )
    module = slug.replace("-", "_")
    if module[0].isdigit():
        module = "k" + module
    return slug, f"{module}_kernels"


def write_project(folder: Path, *, template: str = "pipeline", name: str | None = None) -> Project:
    """Write the ``template`` project into ``folder`` (created if missing).

    Refuses (``UserInputError``, nothing written) when a file it would write exists:
    it never overwrites. Files are created exclusively, so a race with another writer
    fails instead of clobbering.
    """
    if template not in TEMPLATES:
        known = ", ".join(TEMPLATES)
        raise UserInputError(f"unknown template {template!r}", hint=f"templates: {known}")
    if folder.exists() and not folder.is_dir():
        raise UserInputError(f"{folder} exists and is not a folder", hint="pick a new folder name")
    slug, module = project_names(folder, name)
    targets = {
        "topology.yaml": folder / f"{slug}.yaml",
        "kernels.py": folder / f"{module}.py",
        "test_kernels.py": folder / f"test_{module}.py",
    }
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing:
        raise UserInputError(
            f"refusing to overwrite {', '.join(existing)}",
            hint="pick another folder, or --name for other file names",
        )
    values = {
        "name": slug,
        "yaml_name": _yaml_name(slug),
        "module": module,
        "count": str(_COUNT[template]),
        # Comments name the files as the user will type them; a folder name that could
        # break a YAML comment or a docstring (a newline, quotes) is left out.
        "file": _shown(targets["topology.yaml"]),
        "file_name": targets["topology.yaml"].name,
        "folder": _shown(folder),
        # In a folder that is a package (``__init__.py``), pytest imports the tests as
        # ``package.test_...``: the kernels are then found relative to them.
        "import_from": ("." if (folder / "__init__.py").is_file() else "") + module,
    }
    source = resources.files("ringctl") / "templates" / template
    common = resources.files("ringctl") / "templates" / "common"
    texts = {}
    for template_name, target in targets.items():
        text = (source / f"{template_name}.tmpl").read_text("utf-8")
        texts[target] = string.Template(text).substitute(values)
    # pytest settings (async tests without markers, no pytest-asyncio warning), unless
    # the folder already has its own.
    if not any((folder / config).exists() for config in _PYTEST_CONFIGS):
        for config in ("pytest.ini", "conftest.py"):
            text = (common / f"{config}.tmpl").read_text("utf-8")
            texts[folder / config] = string.Template(text).substitute(values)
    written: list[Path] = []  # only files this call created: those are removed on failure
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for target, text in texts.items():
            with open(target, "x", encoding="utf-8") as out:
                written.append(target)
                out.write(text)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise UserInputError(
                f"refusing to overwrite {exc.filename}",
                hint="it appeared while the project was written",
            ) from None
        raise UserInputError(
            f"cannot write the project into {folder}: {exc.strerror or exc}",
            hint="check the folder's permissions and free space",
        ) from None
    return Project(
        folder=folder,
        name=slug,
        topology=targets["topology.yaml"],
        kernels=targets["kernels.py"],
        tests=targets["test_kernels.py"],
        extra=[path for path in texts if path not in targets.values()],
    )


def _yaml_name(slug: str) -> str:
    """``slug`` as a YAML value: quoted where YAML reads a number, null or a boolean (``2024``)."""
    from ringctl.topology.loader import parse_yaml

    if parse_yaml(f"name: {slug}", "<name>").data == {"name": slug}:
        return slug
    return f'"{slug}"'  # a slug is letters, digits and '-': nothing to escape


def shell_arg(path: Path) -> str:
    """``path`` as a command-line argument: quoted, and never read as an option."""
    return shlex.quote(_not_an_option(str(path)))


def _not_an_option(text: str) -> str:
    # `ringctl up -demo/demo.yaml` would be read as the options -d, -e, ...
    return f"./{text}" if text.startswith("-") else text


def _shown(path: Path) -> str:
    text = _not_an_option(str(path))
    if re.fullmatch(r"[\w./+@:-]+", text):
        return text
    name = _not_an_option(path.name)
    return shlex.quote(name) if re.fullmatch(r"[\w ./+@:-]+", name) else "."
