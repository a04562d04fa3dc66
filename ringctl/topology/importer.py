"""Resolve ``entry: module:attribute`` strings to kernels, with one error per way it fails.

After uvicorn's ``importer.py``: a missing colon, a module that is not found, a module
that fails while importing, a missing attribute and an object that is not a kernel are
different mistakes with different fixes, so each gets its own message and hint. This is
the only part of the topology layer that runs user code (module top levels); plain
``ringctl validate`` never calls it, and uses ``find_entries`` instead: it looks each
entry's top-level package up on the search path without importing anything.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ringctl._substituted import typed
from ringctl.topology.entries import EntryError, missing_entries, search_path, split_entry
from ringctl.topology.errors import Diagnostic, TopologyError, did_you_mean, in_file_order
from ringctl.topology.loader import DataPath, SourceMap
from ringctl.topology.schema import PersistentSpec, Topology
from ringctl.topology.validate import pydantic_diagnostics

if TYPE_CHECKING:
    from ringctl.kernel.persistent import PersistentKernel
    from ringctl.kernel.ring import RingKernel

__all__ = ["EntryError", "find_entries", "import_entry", "resolve_entries", "search_path"]


def find_entries(topology: Topology) -> None:
    """Check that every entry names a package that exists, without importing anything.

    A misspelt submodule or attribute is found by ``resolve_entries`` (and ``ringctl
    validate --import``); see ``entries.missing_entries``. Raises ``TopologyError``
    listing every entry not found.
    """
    source = topology.source_map or SourceMap(str(topology.source_path or "<topology>"), None)
    folders = search_path(topology)
    problems: list[Diagnostic] = []
    for miss in missing_entries(topology):
        at: DataPath = ("kernels", miss.kernel_id, "entry")
        if miss.error is not None:
            message, hint = miss.error.message, miss.error.hint
        else:
            message = f"cannot import '{miss.module}': no module named '{miss.package}'"
            hint = _not_found_hint(miss.module, miss.package, folders)
        problems.append(source.diagnostic(at, f"kernel '{miss.kernel_id}': {message}", hint))
    if problems:
        raise TopologyError(in_file_order(problems))


def import_entry(entry: str, searched: list[tuple[Path, str]] | None = None) -> Any:
    """Import ``module:attribute`` (attribute may be dotted) from the current ``sys.path``.

    Raises ``EntryError``; ``searched`` only makes the "not found" hint name the folders.
    """
    module_name, attribute = split_entry(entry)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise EntryError(
                f"cannot import '{module_name}': no module named '{missing}'",
                _not_found_hint(module_name, missing, searched),
            ) from None
        raise EntryError(
            f"importing '{module_name}' failed: it imports '{missing}', which is not installed",
            f"install the package that provides '{missing}' or fix the import in {_where(exc)}",
        ) from None
    except SyntaxError as exc:
        raise EntryError(
            f"importing '{module_name}' failed: syntax error at {exc.filename}:{exc.lineno}: "
            f"{exc.msg}",
            "fix the kernel module's source",
        ) from None
    except (Exception, SystemExit) as exc:  # its top level raised: report, never crash
        raise EntryError(
            f"importing '{module_name}' failed: {type(exc).__name__}: {exc}",
            f"the error is raised at {_where(exc)}",
        ) from None
    obj: Any = module
    walked = module_name
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = [n for n in dir(obj) if not n.startswith("_")]
            guess = did_you_mean(part, names)
            kernels = _kernels_in(obj) if guess is None else []
            if guess is not None:
                hint = f"did you mean '{guess}'?"
            elif kernels:
                hint = "kernels there: " + ", ".join(kernels)
            else:
                hint = "check the name after the ':'"
            raise EntryError(f"'{walked}' has no attribute '{part}'", hint) from None
        walked = f"{walked}:{part}" if walked == module_name else f"{walked}.{part}"
    return obj


#: Compiles a persistent kernel's handler for its records: None, or why it does not compile.
CompileCheck = Callable[["PersistentKernel"], "str | None"]


def resolve_entries(
    topology: Topology, *, compile_handlers: CompileCheck | None = None
) -> dict[str, RingKernel | PersistentKernel]:
    """Import every kernel's entry, wrap it as a ``RingKernel`` and check params and ports.

    A persistent kernel comes back as its ``PersistentKernel`` (its records checked
    against its neighbours'); nothing is started: the orchestrator puts it behind a
    bridge when it plans a run (``ringctl.orchestrator.loading``). With
    ``compile_handlers`` (``validate --import`` passes the engine's check) each persistent
    kernel's handler is also compiled for its records, so a handler that does not
    type-check is reported at the author's line before anything runs (``up`` compiles it
    in the worker instead).

    Raises ``TopologyError`` with every problem found, positioned in the file. Modules
    imported stay imported (the kernels need them), but ``sys.path`` is restored
    afterwards so that loading a topology does not change what the rest of the process
    imports; kernel modules must therefore import what they need at their top level.
    """
    from ringctl.kernel.ring import as_kernel, is_kernel

    source = topology.source_map or SourceMap(str(topology.source_path or "<topology>"), None)
    problems: list[Diagnostic] = []
    folders = search_path(topology)
    for index, entry in enumerate(topology.python_path):
        folder = (topology.base_dir / entry).resolve()
        if not folder.is_dir():
            problems.append(
                source.diagnostic(
                    ("python_path", index),
                    f"python_path entry '{entry}' is not a folder (it resolves to {folder})",
                    "paths are relative to the topology file's folder",
                )
            )

    resolved: dict[str, RingKernel] = {}
    persistent: dict[str, PersistentKernel] = {}
    imported: dict[str, Any] = {}
    saved = list(sys.path)
    try:
        sys.path[:0] = [str(folder) for folder, _ in folders]
        importlib.invalidate_caches()
        for kernel_id, spec in topology.kernels.items():
            at: DataPath = ("kernels", kernel_id, "entry")
            try:
                if spec.entry not in imported:
                    imported[spec.entry] = import_entry(spec.entry, folders)
            except EntryError as exc:
                imported[spec.entry] = exc
            found = imported[spec.entry]
            if isinstance(found, EntryError):
                problems.append(
                    source.diagnostic(at, f"kernel '{kernel_id}': {found.message}", found.hint)
                )
                continue
            if spec.persistent is not None or _is_persistent(found):
                problem = _persistent_problem(kernel_id, spec.entry, found, spec.persistent)
                if problem is not None:
                    problems.append(source.diagnostic(at, *problem))
                    continue
                persistent[kernel_id] = found
                if spec.params and found.init is None:  # only init(params) reads them
                    problems.append(
                        source.diagnostic(
                            ("kernels", kernel_id, "params"),
                            f"kernel '{kernel_id}' takes no params: '{spec.entry}' is a "
                            "@persistent_kernel without init=, so these would be ignored",
                            "remove `params:`, or give it init=fn, where fn(params) builds "
                            "its state array",
                        )
                    )
                continue
            if not is_kernel(found):
                message, hint = _not_a_kernel(spec.entry, found)
                problems.append(source.diagnostic(at, f"kernel '{kernel_id}': {message}", hint))
                continue
            try:
                kernel = as_kernel(found, kernel_id)
            except TypeError as exc:  # is_kernel and as_kernel disagree: say what it said
                problems.append(source.diagnostic(at, f"kernel '{kernel_id}': {exc}"))
                continue
            resolved[kernel_id] = kernel
            problems.extend(_check_params(kernel_id, spec.params, kernel.params_model, source))
            if spec.params and kernel.params_model is None and not _may_read_params(kernel.func):
                problems.append(
                    source.diagnostic(
                        ("kernels", kernel_id, "params"),
                        f"kernel '{kernel_id}' takes no params: '{spec.entry}' has no params "
                        "model and never reads ctx.params, so these would be ignored",
                        "remove `params:`, or give the kernel a params model "
                        "(@ring_kernel(params=Model)) that says what it takes",
                    )
                )
    finally:
        sys.path[:] = saved

    for index, edge in enumerate(topology.queues):
        producer = resolved.get(edge.producer)
        if producer is None or producer.ports is None or edge.port in producer.ports:
            continue
        ports = ", ".join(producer.ports) or "none"
        guess = did_you_mean(edge.port, producer.ports)
        if guess:
            hint = f"did you mean `from: {edge.producer}.{guess}`?"
        elif producer.ports:
            hint = f"its ports are: {ports}; write `from: {edge.producer}.<port>`"
        else:  # a sink: no port to name, the fix is in the kernel or the wiring
            hint = (
                f"'{edge.producer}' sends nothing (ports=()): feed '{edge.to}' from another "
                f"kernel, or declare the port in its @ring_kernel(ports=...)"
            )
        problems.append(
            source.diagnostic(
                ("queues", index, "from"),
                f"kernel '{edge.producer}' has no output port '{edge.port}' (its ports: {ports})",
                hint,
            )
        )
    if persistent:
        problems.extend(_numba_missing(persistent, source))
        problems.extend(_check_records(topology, persistent, source))
        if compile_handlers is not None and not problems:
            problems.extend(_compile(persistent, source, compile_handlers))
    if problems:
        raise TopologyError(in_file_order(problems))
    entries: dict[str, RingKernel | PersistentKernel] = {**resolved, **persistent}
    return {kid: entries[kid] for kid in topology.kernels}  # file order


def _is_persistent(obj: Any) -> bool:
    # Only a module that defines a persistent kernel has imported ringctl.persistent.
    mod = sys.modules.get("ringctl.kernel.persistent")
    return mod is not None and isinstance(obj, mod.PersistentKernel)


def _persistent_problem(
    kernel_id: str, entry: str, found: Any, spec: PersistentSpec | None
) -> tuple[str, str] | None:
    if spec is None:
        return (
            f"kernel '{kernel_id}': '{entry}' is a @persistent_kernel, but the kernel has no "
            "`persistent:` field",
            "add `persistent: {}` to run it as a compiled loop",
        )
    if not _is_persistent(found):
        from ringctl.kernel.ring import is_kernel

        if is_kernel(found):
            return (
                f"kernel '{kernel_id}' is marked `persistent:` but '{entry}' is an ordinary "
                "(async) kernel",
                "point entry at a @persistent_kernel, or remove `persistent:`",
            )
        return (
            f"kernel '{kernel_id}' is marked `persistent:` but '{entry}' is not a "
            "@persistent_kernel",
            "see docs/persistent.md for how to declare one",
        )
    return None


def _numba_missing(persistent: dict[str, Any], source: SourceMap) -> list[Diagnostic]:
    """Persistent kernels compile with Numba: without it, one line at the first of them."""
    try:
        import numba  # noqa: F401  (the worker imports it; importing it here checks it)
    except ImportError:
        from ringctl.checks import NUMBA_HINT

        first = next(iter(persistent))
        at: DataPath = ("kernels", first, "entry")
        return [source.diagnostic(at, f"kernel '{first}' needs Numba, which is not installed",
                                  NUMBA_HINT)]  # fmt: skip
    return []


def _compile(
    persistent: dict[str, Any], source: SourceMap, check_compiles: CompileCheck
) -> Iterator[Diagnostic]:
    from ringctl.checks import NUMBA_HINT

    for kernel_id, kernel in persistent.items():
        if getattr(kernel, "native", None) is not None:
            continue  # a C++ handler: its compiler reports at launch, at the file's line
        error = check_compiles(kernel)
        if error is None:
            continue
        at: DataPath = ("kernels", kernel_id, "entry")
        if NUMBA_HINT in error:
            yield source.diagnostic(at, "Numba is not installed", NUMBA_HINT)
            return
        yield source.diagnostic(at, f"kernel '{kernel_id}': {error}")


def _check_records(
    topology: Topology, persistent: dict[str, Any], source: SourceMap
) -> Iterator[Diagnostic]:
    """Records must match where a persistent kernel writes into another's ring."""
    for index, edge in enumerate(topology.queues):
        producer = persistent.get(edge.producer)
        if producer is not None and producer.output is None:
            yield source.diagnostic(
                ("queues", index, "from"),
                f"kernel '{edge.producer}' is a persistent sink (it writes no records), "
                f"so it cannot feed '{edge.to}'",
                "give its @persistent_kernel an `output=` record type, or remove this queue",
            )
            continue
        consumer = persistent.get(edge.to)
        if producer is None or consumer is None or producer.output == consumer.input:
            continue
        yield source.diagnostic(
            ("queues", index),
            f"queue {edge.label}: '{edge.producer}' writes records {_fields(producer.output)}"
            f" but '{edge.to}' reads {_fields(consumer.input)}",
            "connected persistent kernels must use the same record dtype (same fields, "
            "types and order)",
        )


def _fields(dtype: Any) -> str:
    names = dtype.names or ()
    return "(" + ", ".join(f"{n}: {dtype.fields[n][0]}" for n in names) + ")"


def _not_a_kernel(entry: str, obj: Any) -> tuple[str, str]:
    """Why ``obj`` is not a kernel, guessing the likely slip, with no addresses in it."""
    usage = "a kernel is `async def kernel(ctx)` or a function decorated with @ring_kernel"
    if inspect.iscoroutinefunction(obj):
        return (
            f"'{entry}' is async but does not take exactly one argument (the kernel context)",
            usage,
        )
    if inspect.isclass(obj):
        return f"'{entry}' is a class, not a kernel", usage
    if inspect.ismodule(obj):
        return f"'{entry}' is a module, not a kernel", "name a function after the ':'"
    if callable(obj):
        return f"'{entry}' is a plain function, not a kernel", "did you forget 'async'? " + usage
    kind = type(obj).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    shown = repr(obj)
    shown = shown if len(shown) <= 40 and " at 0x" not in shown else "..."
    return f"'{entry}' is not a kernel (it is {article} {kind}: {shown})", usage


def _may_read_params(func: Any) -> bool:
    """Whether a kernel body may read ``ctx.params``: its code names ``params``, or it
    hands its context to other code (which might). A body that does neither cannot."""
    import dis
    import itertools

    code = getattr(func, "__code__", None)
    if code is None or not code.co_argcount:
        return True  # not a plain function: assume it may
    ctx_name = code.co_varnames[0]
    todo = [code]
    while todo:
        current = todo.pop()
        if "params" in current.co_names:
            return True
        todo.extend(c for c in current.co_consts if hasattr(c, "co_code"))
        loads = ("LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE")
        for ins, following in itertools.pairwise(dis.get_instructions(current)):
            if ins.opname not in loads or ins.argval != ctx_name:
                continue
            if ins.opname == "LOAD_CLOSURE" or following.opname not in ("LOAD_ATTR", "LOAD_METHOD"):
                return True  # the context goes somewhere else (a helper, a closure)
    return False


def _check_params(
    kernel_id: str,
    params: dict[str, Any],
    model: type[BaseModel] | None,
    source: SourceMap,
) -> list[Diagnostic]:
    if model is None:
        return []
    prefix: DataPath = ("kernels", kernel_id, "params")
    try:
        model.model_validate(typed(params, all_scalars=False))
    except ValidationError as exc:
        return [d for _, d in pydantic_diagnostics(exc, source, model, prefix)]
    except Exception as exc:  # a validator in the kernel's model raised something else
        return [
            source.diagnostic(
                prefix,
                f"kernel '{kernel_id}': checking params raised {type(exc).__name__}: {exc}",
                f"the params model {model.__qualname__} should raise ValueError for bad input",
            )
        ]
    return []


def _not_found_hint(module: str, missing: str, searched: list[tuple[Path, str]] | None) -> str:
    folders = searched or []
    parts: list[str] = []
    parent_name, _, leaf = missing.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if parent is not None:
        children = [info.name for info in pkgutil.iter_modules(getattr(parent, "__path__", []))]
        guess = did_you_mean(leaf, children)
        if guess is not None:
            parts.append(f"did you mean '{parent_name}.{guess}'?")
        location = getattr(parent, "__file__", None)
        inside = location is not None and any(
            Path(location).resolve().is_relative_to(folder) for folder, _ in folders[:-1]
        )
        if location is not None and not inside:
            parts.append(
                f"'{parent_name}' was imported from {location}: another package of that name?"
            )
    else:
        candidates: list[str] = []
        for folder, _ in folders:
            try:
                candidates.extend(
                    p.stem
                    for p in folder.iterdir()
                    if p.suffix == ".py" or (p / "__init__.py").is_file()
                )
            except OSError:
                continue
        guess = did_you_mean(missing.partition(".")[0], candidates)
        if guess is not None:
            parts.append(f"did you mean '{guess}'?")
        if module.partition(".")[0] == "kernels":
            parts.append('the repository\'s kernels/ package is reached with `python_path: [".."]`')
    if folders:
        parts.append("searched: " + "; ".join(f"{folder} ({why})" for folder, why in folders))
    return " ".join(parts) or "check the module name"


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    # The last frame outside importlib and ringctl is where the kernel module's own code
    # raised (a plain `def` under @ring_kernel raises in ringctl, called from that line).
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for frame in reversed(frames):
        if "importlib" in frame.filename:
            continue
        if os.path.abspath(frame.filename).startswith(ours + os.sep):
            continue
        shown = os.path.relpath(frame.filename)
        return f"{frame.filename if shown.startswith('..') else shown}:{frame.lineno}"
    return "the kernel module"


def _kernels_in(obj: Any) -> list[str]:
    from ringctl.kernel.ring import is_kernel

    names = []
    for name in dir(obj):
        if name.startswith("_"):
            continue
        try:
            if is_kernel(getattr(obj, name)):
                names.append(name)
        except Exception:  # a property on a module object may raise; it is not a kernel
            continue
    return names[:12]
