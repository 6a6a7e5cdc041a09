"""The user's own targets: ``path/to/file.py:NAME``, ``package.module:NAME`` and ``model.onnx``.

A target file is Python that fnbench runs: resolving ``mine.py:MyMixer`` imports ``mine.py`` in the
resolving process. That is also how worker processes get it: a worker resolves the
:class:`~fnbench.targets.TargetSpec` it is sent, so it imports the file itself (the fork server
preloads only torch and fnbench); ``--workers``, ``--passes``, every ``--allocator`` and
``compare``'s interleaving then work as for a built-in. A factory registered with
``OPERATORS.register`` in the caller's own script, by contrast, exists only in that process.

**Operator or network.** NAME is a class or a function returning an ``nn.Module``. When its
signature takes a channel count (``c``, ``dim``, ``channels`` or ``in_channels``) it is an
operator: built for the C of the shape and stacked ``layers`` times (each layer must keep the
shape), as the built-ins are. Otherwise it is a network, built once. The flags fnbench has
(``--kernel``, ``--groups``, …) and ``--opt KEY=VALUE`` pass keywords the signature accepts.

**Identity.** A record names its source: the file (or module), NAME, and a sha256 of the file's
bytes (of the ``.onnx`` bytes). The digest is part of the measurement's identity
(:func:`fnbench.results.identity_key`), so an edited file is a new target: ``--resume`` refuses to
mix versions, and dedupe and reports keep them apart. The digest also travels in the spec, so a
worker that finds the file changed since the run resolved it refuses to measure it.

**ONNX files** are measured under ONNX Runtime (the graph as given, not re-exported); eager and
compile need a PyTorch module and are refused. MACs and bytes come from the graph, counted with
onnx-tool (:func:`onnx_cost`), chosen because it is maintained (releases through 2026), is pure
Python over ``onnx`` and ``numpy`` (both already required), and infers every tensor's shape and
each node's MACs with published per-op formulas; fnbench's own counter runs on aten ops and cannot
see inside a graph.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from operators import Entry

from .errors import UserError, first_line

__all__ = [
    "CHANNEL_PARAMS",
    "UserSource",
    "is_user_target",
    "load",
    "parse_opts",
    "check_runtime_for",
    "onnx_cost",
]

#: Parameter names that make NAME an operator (built for the C of the shape).
CHANNEL_PARAMS = ("c", "dim", "channels", "in_channels")
_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
#: Prefixes of the built-in resolvers (``timm:NAME``, ``tv:NAME``): never a user's module.
_BUILTIN_PREFIXES = ("timm", "tv")


#: Zero-argument callables given to the Python API (``fnbench.run(lambda: MyNet())``), by name:
#: they exist in this process only, so they are measured here, never on worker processes.
_CALLABLES: dict[str, Any] = {}


def register_callable(fn) -> str:
    """A name (``callable:module.qualname``, ``#2`` … for another callable of that name) under which
    :func:`load` finds ``fn`` in this process."""
    base = f"callable:{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    name, n = base, 1
    while _CALLABLES.get(name, fn) is not fn:
        n += 1
        name = f"{base}#{n}"
    _CALLABLES[name] = fn
    return name


def is_in_process_only(name: str) -> bool:
    return name in _CALLABLES


def _split(name: str) -> tuple[str, str, str] | None:
    """``(kind, where, attr)`` for a user target (kind ``file``, ``module``, ``onnx``, ``callable``), else None."""
    if name in _CALLABLES:
        return "callable", name, ""
    if name.lower().endswith(".onnx"):
        return "onnx", name, ""
    if ":" not in name:
        return None
    where, attr = name.rsplit(":", 1)
    if where in _BUILTIN_PREFIXES or not where:
        return None
    if where.endswith(".py") or "/" in where or os.sep in where:
        return "file", where, attr
    if _DOTTED.match(where):
        return "module", where, attr
    return None


def is_user_target(name: str) -> bool:
    return _split(name) is not None


def parse_opts(items) -> dict[str, Any]:
    """``["k=5", "act='gelu'"]`` → ``{"k": 5, "act": "gelu"}``; each VALUE a Python literal.

    Lists become tuples (a target's options are part of its hashable identity).
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not _IDENT.match(key):
            raise UserError(f"--opt {item!r} is not KEY=VALUE: use e.g. --opt expand=4 or --opt act=\"'gelu'\"")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise UserError(
                f"--opt {item!r}: {text!r} is not a Python literal; quote strings, e.g. --opt {key}=\"'{text}'\""
            ) from None
        if isinstance(value, list):
            value = tuple(value)
        try:
            hash(value)
        except TypeError:
            raise UserError(f"--opt {item!r}: use a number, string, bool, None or a tuple of those") from None
        if key in out:
            raise UserError(f"--opt {key} is given twice: give it once")
        out[key] = value
    return out


@dataclass
class UserSource:
    """What a user target resolved to: how to build it (or its graph) and the record's ``source`` block."""

    kind: str  # "operator", "network" or "onnx"
    entry: Entry
    block: dict[str, Any]  # the record's target.source: file/module, name, sha256
    onnx: bytes | None = None
    onnx_shape: tuple[int, ...] | None = None  # (C, H, W) from the graph
    onnx_batch: int | None = None  # a static batch dimension, None when dynamic


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: Imported user files by (absolute path, sha256): a resolved target is resolved again per shape
#: and per chunk, and the file is executed once per process and version.
_IMPORTED: dict[tuple[str, str], Any] = {}


def _import_file(where: str) -> tuple[Any, str, Path]:
    path = Path(where)
    if not path.is_file():
        raise UserError(f"{where}: no such file; give the path of a Python file, e.g. mine.py:MyMixer")
    data = path.read_bytes()
    sha = _sha256(data)
    key = (str(path.resolve()), sha)
    if key in _IMPORTED:
        return _IMPORTED[key], sha, path
    stem = re.sub(r"\W", "_", path.stem)
    mod_name = f"_fnbench_user_{stem}_{sha[:12]}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{where}: cannot be imported as a Python file; give a .py file, e.g. mine.py:MyMixer")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look a module up by name
    sys.path.insert(0, str(path.resolve().parent))  # so that it can import its neighbours
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(mod_name, None)
        raise UserError(f"{where}:{e.lineno}: syntax error ({e.msg}); fix the file and run again") from None
    except Exception as e:  # noqa: BLE001 — whatever the user's file raises while importing is its error
        sys.modules.pop(mod_name, None)
        raise UserError(f"{where}: importing it failed: {first_line(e)}; fix the file and run again") from None
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(path.resolve().parent))
    _IMPORTED[key] = module
    return module, sha, path


def _import_module(where: str) -> tuple[Any, str | None]:
    try:
        module = importlib.import_module(where)
    except ModuleNotFoundError as e:
        raise UserError(
            f"{where}: no such module ({first_line(e)}); check the name or PYTHONPATH, give a file as "
            "path/to/file.py:NAME, or see `fnbench list` (timm:NAME and tv:NAME name those libraries' models)"
        ) from None
    except SyntaxError as e:
        raise UserError(f"{e.filename}:{e.lineno}: syntax error ({e.msg}); fix the file and run again") from None
    except Exception as e:  # noqa: BLE001 — the module's own import error
        raise UserError(f"{where}: importing it failed: {first_line(e)}; fix the module and run again") from None
    file = getattr(module, "__file__", None)
    sha = _sha256(Path(file).read_bytes()) if file and Path(file).is_file() else None
    return module, sha


def _callables(module) -> list[str]:
    mod_name = module.__name__
    return sorted(
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == mod_name
    )


def _signature(obj) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def load(name: str, options: dict[str, Any], digest: str | None = None, *, flag=str) -> UserSource:
    """Import and check the user target ``name``; raise :class:`UserError` on any bad input.

    ``digest``: the sha256 the caller resolved earlier; a file that no longer has it is refused.
    ``flag``: option key → the command-line flag that sets it (for the messages).
    """
    kind, where, attr = _split(name)  # type: ignore[misc]
    if kind == "onnx":
        return _load_onnx(name, options, digest)
    if kind == "callable":
        if options:
            raise UserError(f"{name} is a zero-argument callable: it takes no options ({', '.join(options)})")
        block = {"callable": name.split(":", 1)[1], "name": None, "sha256": None, "options": {}}
        return UserSource("network", Entry(name, _factory(name, _CALLABLES[name], None), "a callable"), block)
    if not _IDENT.match(attr):
        raise UserError(f"{name}: {attr!r} is not a Python name; use FILE.py:NAME, e.g. mine.py:MyMixer")
    if kind == "file":
        module, sha, path = _import_file(where)
        block: dict[str, Any] = {"file": where, "path": str(path.resolve()), "name": attr, "sha256": sha}
    else:
        module, sha = _import_module(where)
        block = {"module": where, "name": attr, "sha256": sha, "path": getattr(module, "__file__", None)}
    _check_digest(name, sha, digest)
    if not hasattr(module, attr):
        have = _callables(module)
        listing = f"it defines {', '.join(have)}" if have else "it defines no public class or function"
        raise UserError(f"{where} has no {attr!r}; {listing}: use one of those after the colon")
    obj = getattr(module, attr)
    if not callable(obj):
        raise UserError(
            f"{name} is a {type(obj).__name__}, not a class or function; give one that returns an nn.Module"
        )
    sig = _signature(obj)
    params = sig.parameters if sig is not None else {}
    chan = next((p for p in CHANNEL_PARAMS if p in params), None)
    _check_keywords(name, params, chan, options, flag)
    block["options"] = dict(options)
    entry = Entry(name, _factory(name, obj, chan), f"{block.get('file') or block.get('module')}:{attr}")
    return UserSource("operator" if chan else "network", entry, block)


def _check_digest(name: str, sha: str | None, digest: str | None) -> None:
    if digest is not None and sha != digest:
        raise UserError(
            f"{name} changed since it was resolved (sha256 {digest[:12]}…, now {(sha or 'none')[:12]}…); "
            "an edited file is a new target: start a new run"
        )


def _check_keywords(name: str, params, chan: str | None, options: dict[str, Any], flag) -> None:
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    takes = [
        p
        for p, v in params.items()
        if p != chan and v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY) and p not in ("self",)
    ]
    for key in options:
        if key not in takes:
            listing = f"it takes {', '.join(takes)} (pass them with --opt KEY=VALUE)" if takes else "it takes none"
            raise UserError(f"{name} has no keyword {key!r} (from {flag(key)}); {listing}")


def _factory(name: str, obj, chan: str | None):
    """``factory(c, **options)`` for an operator, ``factory(**options)`` for a network, checked."""

    def built(m: Any) -> nn.Module:
        if not isinstance(m, nn.Module):
            raise UserError(
                f"{name} returned a {type(m).__name__}, not an nn.Module; return the module (e.g. nn.Sequential(...))"
            )
        return m

    if chan is not None:
        return lambda c, **kw: built(obj(**{chan: c}, **kw))
    return lambda **kw: built(obj(**kw))


def build_checked(name: str, make) -> nn.Module:
    """``make()`` with the factory's own exception turned into a one-line :class:`UserError`."""
    try:
        return make()
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 — the user's factory raised: its first line says why
        raise UserError(f"{name}: building it raised {first_line(e)}; fix the factory or its options") from None


def probe_shape(name: str, module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape (without batch) of ``module`` on one sample of ``shape``, or a UserError saying why not.

    Shapes are tried on the meta device (no memory, no arithmetic); an op without a meta kernel
    falls back to one real forward.
    """
    try:
        with torch.no_grad():
            meta = module.to("meta")
            out = meta(torch.empty((1, *shape), device="meta"))
    except NotImplementedError:
        out = None
    except Exception as e:  # noqa: BLE001 — the module refused the input; its message says why
        raise UserError(
            f"{name} cannot take input {'x'.join(map(str, shape))} ({first_line(e)}); give a --shape it takes"
        ) from None
    if out is None:
        return ()
    if not isinstance(out, torch.Tensor):
        raise UserError(f"{name} returns a {type(out).__name__}, not a tensor; fnbench times one tensor in, one out")
    return tuple(out.shape[1:])


# -- ONNX files -------------------------------------------------------------------------------------


def _load_onnx(name: str, options: dict[str, Any], digest: str | None) -> UserSource:
    import onnx

    path = Path(name)
    if not path.is_file():
        raise UserError(f"{name}: no such file; give the path of an .onnx model")
    if options:
        raise UserError(f"{name} is an ONNX graph: it takes no options ({', '.join(options)}); drop them")
    data = path.read_bytes()
    sha = _sha256(data)
    _check_digest(name, sha, digest)
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 — onnx raises DecodeError, ValidationError, …
        raise UserError(
            f"{name} does not load as an ONNX model ({first_line(e)}); export it again (torch.onnx.export)"
        ) from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UserError(
            f"{name} has {len(inputs)} inputs ({', '.join(i.name for i in inputs) or 'none'}); fnbench feeds "
            "one NCHW tensor: export a graph with exactly one input"
        )
    dims = [(d.dim_value if d.HasField("dim_value") else None) for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise UserError(f"{name}'s input {inputs[0].name} has rank {len(dims)}; fnbench feeds NxCxHxW (rank 4)")
    block = {"file": name, "path": str(path.resolve()), "name": None, "sha256": sha, "options": {}}
    chw = tuple(dims[1:])
    return UserSource(
        "onnx",
        Entry(name, _no_module(name), f"ONNX graph {path.name}"),
        block,
        onnx=data,
        onnx_shape=None if None in chw else chw,  # type: ignore[arg-type]
        onnx_batch=dims[0],
    )


def _no_module(name: str):
    def factory(**_kw):
        raise UserError(f"{name} is an ONNX graph, not a PyTorch module: measure it with --runtime onnxruntime")

    return factory


def check_runtime_for(name: str, is_onnx: bool, runtime: str) -> None:
    """Refuse, for an ONNX file, a runtime that needs a PyTorch module (eager, compile, …), before anything is measured."""
    from .runtimes import graph_runtimes

    takes_graphs = graph_runtimes()
    if is_onnx and runtime not in takes_graphs:
        raise UserError(
            f"{name} is an ONNX graph: {runtime} needs a PyTorch module; use --runtime {' or '.join(takes_graphs)}"
        )


def with_batch(data: bytes, batch: int, shape: tuple[int, ...]) -> bytes:
    """The graph with its input (and dynamic batch) fixed to ``(batch, *shape)``, for shape inference."""
    import onnx

    model = onnx.load_from_string(data)
    inits = {i.name for i in model.graph.initializer}
    inp = next(i for i in model.graph.input if i.name not in inits)
    for d, v in zip(inp.type.tensor_type.shape.dim, (batch, *shape)):
        d.ClearField("dim_param")
        d.dim_value = int(v)
    return model.SerializeToString()


def onnx_cost(data: bytes, batch: int, shape: tuple[int, ...]) -> dict[str, int]:
    """Params, MACs and bytes moved of an ONNX graph at input ``(batch, *shape)``, counted with onnx-tool.

    MACs are onnx-tool's per-node figures summed. Bytes follow fnbench's counted convention
    (:class:`fnbench.counting.ByteCounter`): every node reads each of its inputs (activations and
    weights) and writes each of its outputs, sized from onnx-tool's shape inference.
    """
    import numpy as np
    import onnx
    import onnx_tool

    model = onnx_tool.Model(onnx.load_from_string(with_batch(data, batch, shape)))
    graph = model.graph
    graph.shape_infer()
    graph.profile()
    tm = graph.tensormap

    def nbytes(t: str) -> int:
        tensor = tm.get(t)
        if tensor is None:
            return 0
        shp = tensor.get_shape() if hasattr(tensor, "get_shape") else tensor.shape
        return int(np.prod([int(s) for s in shp], dtype=np.int64)) * int(np.dtype(tensor.dtype).itemsize)

    macs = sum(int(n.macs[0]) for n in graph.nodemap.values())
    moved = sum(nbytes(t) for n in graph.nodemap.values() for t in list(n.input) + list(n.output) if t)
    return {"params": int(graph.params), "macs": macs, "mem_bytes_counted": moved}
