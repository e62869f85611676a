"""The import architecture of the package, checked from source (docs/architecture.md, "What may import what").

Every ``.py`` file under ``rlhf_gym/``, ``agents/``, ``envs/`` and ``leaderboard/`` is parsed with `ast`, never
imported, so this runs in well under a second and loads no model. Source files map to the
module names they install as (``pyproject.toml``'s ``package-dir``)::

    rlhf_gym/env/task.py     -> rlhf_gym.env.task
    agents/sb3/train.py      -> rlhf_gym.agents.sb3.train
    envs/summarize/world.py  -> rlhf_gym.envs.summarize.world
    envs/__init__.py         -> rlhf_gym.envs   (a package's ``__init__`` is its own node)

Every import counts, wherever it sits: top level, inside functions (lazy imports), and
``importlib.import_module("literal")`` / ``__import__("literal")`` calls. ``from pkg import
name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``. No implicit edge
is added from a submodule to its parent package.

The checks: the module graph has no cycle, and the layering rules of `RULES` hold.
Self-tests run the same functions on synthetic sources, so the checks cannot pass
vacuously.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Source folder -> the package it installs as (pyproject.toml, [tool.setuptools] package-dir).
SOURCE_ROOTS = {"rlhf_gym": "rlhf_gym", "agents": "rlhf_gym.agents", "envs": "rlhf_gym.envs", "leaderboard": "rlhf_gym.leaderboard"}

CATALOGUE = "rlhf_gym.envs"  # the suite's catalogue (`SUITE`); its subpackages are the worlds
CORE = (
    "rlhf_gym.lm",
    "rlhf_gym.rewards",
    "rlhf_gym.env",
    "rlhf_gym.pipeline",
    "rlhf_gym.worlds",
    "rlhf_gym.atomic_dir",
    "rlhf_gym.registration",
)


# Scanning -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One parsed module."""

    module: str  # installed name, e.g. "rlhf_gym.agents.common"
    path: str  # repository-relative path, for messages
    tree: ast.Module
    is_package: bool  # an ``__init__.py``


@dataclass(frozen=True)
class Import:
    """One import statement or ``import_module`` call, resolved to a module of the package."""

    source: str  # the importing module
    target: str  # the imported module (or the unresolved dotted name)
    where: str  # "path:line"
    lazy: bool  # inside a function: runs when called, not when the module is imported
    typing_only: bool = False  # inside ``if TYPE_CHECKING:``: never runs, only names types


def module_name(path: Path, repo: Path = REPO) -> str:
    """The installed module name of a source file, e.g. ``agents/x.py`` -> ``rlhf_gym.agents.x``."""
    parts = path.relative_to(repo).with_suffix("").parts
    prefix = SOURCE_ROOTS[parts[0]]
    rest = list(parts[1:])
    if rest and rest[-1] == "__init__":
        rest.pop()
    return ".".join([prefix, *rest])


def scan_sources(repo: Path = REPO) -> dict[str, Source]:
    """Parse every module of the package (``build/`` folders skipped)."""
    sources: dict[str, Source] = {}
    for root in SOURCE_ROOTS:
        for path in sorted((repo / root).rglob("*.py")):
            relative = path.relative_to(repo)
            if "build" in relative.parts[:-1] or "__pycache__" in relative.parts:
                continue
            name = module_name(path, repo)
            sources[name] = Source(name, str(relative), ast.parse(path.read_text(), str(relative)), path.name == "__init__.py")
    return sources


def _is_internal(name: str) -> bool:
    return name == "rlhf_gym" or name.startswith("rlhf_gym.")


def _resolve_relative(source: Source, name: str | None, level: int) -> str:
    """The absolute name of a relative import (``from ..x import y`` has level 2, name "x")."""
    if level == 0:
        return name or ""
    package = source.module.split(".") if source.is_package else source.module.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _literal_import_call(node: ast.Call) -> tuple[str, str | None] | None:
    """``(name, package)`` of ``importlib.import_module("name")`` / ``__import__("name")`` with a literal."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if called not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None  # a computed name (a lookup table): not an edge; see test_lazy_tables_name_real_modules
    package = None
    candidates = [k.value for k in node.keywords if k.arg == "package"] + node.args[1:2]
    if called == "import_module" and candidates and isinstance(candidates[0], ast.Constant):
        package = candidates[0].value
    return first.value, package


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, in_function: bool = False, typing_only: bool = False) -> Iterable[tuple[ast.AST, bool, bool]]:
    """Every node under ``node`` with whether it sits inside a function (runs only when
    called) and inside an ``if TYPE_CHECKING:`` body (never runs)."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for child in node.body:
            yield child, in_function, True
            yield from _walk(child, in_function, True)
        for child in node.orelse:
            yield child, in_function, typing_only
            yield from _walk(child, in_function, typing_only)
        return
    for child in ast.iter_child_nodes(node):
        yield child, in_function, typing_only
        nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(child, nested, typing_only)


def imports_of(source: Source, known: set[str]) -> list[Import]:
    """Every import of ``source`` that names a module of the package (``rlhf_gym...``).

    ``known`` is the set of the package's module names, used to tell ``from pkg import
    submodule`` (an edge to the submodule) from ``from module import name`` (an edge to the
    module). Imports of third-party modules are dropped; internal names that are no module
    are kept as they are, so that `test_every_internal_import_resolves` reports them.
    """
    found: list[Import] = []

    def add(target: str, node: ast.AST, lazy: bool, typing_only: bool) -> None:
        if _is_internal(target) and target != source.module:
            found.append(Import(source.module, target, f"{source.path}:{node.lineno}", lazy, typing_only))

    for node, lazy, typing_only in _walk(source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, lazy, typing_only)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(source, node.module, node.level)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if submodule in known else base, node, lazy, typing_only)
        elif isinstance(node, ast.Call):
            call = _literal_import_call(node)
            if call is not None:
                name, package = call
                if name.startswith(".") and package:
                    level = len(name) - len(name.lstrip("."))
                    parent = package.split(".")
                    name = ".".join([*parent[: len(parent) - (level - 1)], name.lstrip(".")]).rstrip(".")
                add(name, node, lazy, typing_only)
    return found


def all_imports(sources: dict[str, Source]) -> list[Import]:
    known = set(sources)
    return [imp for source in sources.values() for imp in imports_of(source, known)]


def import_graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    """Module -> the modules it imports at run time (self-imports and ``TYPE_CHECKING``-only
    imports dropped: an annotation cannot take part in an import cycle). The layering rules
    still see every import."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.source, set())
        graph.setdefault(imp.target, set())
        if imp.target != imp.source and not imp.typing_only:
            graph[imp.source].add(imp.target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search, sorted order)."""
    state: dict[str, int] = {}  # absent: unvisited, 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


# Layering rules -------------------------------------------------------------------------
def within(module: str, *packages: str) -> bool:
    """``module`` is one of ``packages`` or inside one of them."""
    return any(module == p or module.startswith(p + ".") for p in packages)


def is_world(module: str) -> bool:
    """A world module: ``rlhf_gym.envs.<world>...`` (not the catalogue ``rlhf_gym.envs`` itself)."""
    return module.startswith(CATALOGUE + ".")


def world_of(module: str) -> str:
    """The world package a world module belongs to: ``rlhf_gym.envs.summarize.world`` -> ``rlhf_gym.envs.summarize``."""
    return ".".join(module.split(".")[:3])


KIT = "rlhf_gym.worlds"  # the world kit; its package (not its submodules) is what a world may import


def _only(*allowed: str) -> Callable[[str, str], bool]:
    return lambda source, target: not within(target, *allowed)


@dataclass(frozen=True)
class Rule:
    """Modules matching ``applies`` must not import a target for which ``forbidden`` holds."""

    text: str
    applies: Callable[[str], bool]
    forbidden: Callable[[str, str], bool]


RULES = (
    Rule("rlhf_gym.lm imports no other rlhf_gym package",
         lambda s: within(s, "rlhf_gym.lm"), _only("rlhf_gym.lm")),
    Rule("rlhf_gym.rewards imports only rlhf_gym.lm",
         lambda s: within(s, "rlhf_gym.rewards"), _only("rlhf_gym.rewards", "rlhf_gym.lm")),
    Rule("rlhf_gym.env imports only rlhf_gym.lm and rlhf_gym.rewards",
         lambda s: within(s, "rlhf_gym.env"), _only("rlhf_gym.env", "rlhf_gym.lm", "rlhf_gym.rewards")),
    Rule("rlhf_gym.pipeline imports only rlhf_gym.lm and rlhf_gym.rewards",
         lambda s: within(s, "rlhf_gym.pipeline"), _only("rlhf_gym.pipeline", "rlhf_gym.lm", "rlhf_gym.rewards")),
    Rule("the core imports neither rlhf_gym.agents nor a world (registration may import the catalogue rlhf_gym.envs)",
         lambda s: within(s, *CORE),
         lambda s, t: within(t, "rlhf_gym.agents") or is_world(t) or (t == CATALOGUE and s != "rlhf_gym.registration")),
    Rule("rlhf_gym.agents imports no world module (agents find a task through rlhf_gym.get_task)",
         lambda s: within(s, "rlhf_gym.agents"), lambda s, t: is_world(t)),
    Rule("rlhf_gym.worlds (the kit) imports only the core layers below it",
         lambda s: within(s, KIT),
         _only(KIT, "rlhf_gym.lm", "rlhf_gym.rewards", "rlhf_gym.env", "rlhf_gym.pipeline", "rlhf_gym.atomic_dir")),
    Rule("a world imports from rlhf_gym only the kit's public surface (the rlhf_gym.worlds package) and its own package",
         is_world, lambda s, t: not (t == KIT or within(t, world_of(s)))),
    Rule("the leaderboard imports neither rlhf_gym.agents nor a world (it judges agents by their checkpoints, through get_task)",
         lambda s: within(s, "rlhf_gym.leaderboard"), lambda s, t: within(t, "rlhf_gym.agents") or is_world(t)),
)


# Imports that break a rule on purpose: (source, target) -> why. Empty unless the code needs
# otherwise; an entry here is a decision, so docs/architecture.md should say it too.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("rlhf_gym.lm.policy", "rlhf_gym.atomic_dir"):
        "CausalLMPolicy.save_pretrained swaps its folder in whole; atomic_dir imports nothing, so no cycle can form",
}


def layer_violations(imports: Iterable[Import], rules: Iterable[Rule] = RULES) -> list[str]:
    """One line per import that breaks a rule: ``path:line: source -> target (rule)``."""
    rules = list(rules)
    return [
        f"{imp.where}: {imp.source} -> {imp.target}{' (lazy)' if imp.lazy else ''} breaks: {rule.text}"
        for imp in imports
        if (imp.source, imp.target) not in EXCEPTIONS
        for rule in rules
        if rule.applies(imp.source) and rule.forbidden(imp.source, imp.target)
    ]


# The package ------------------------------------------------------------------------------
SOURCES = scan_sources()
IMPORTS = all_imports(SOURCES)


def test_scan_finds_the_package() -> None:
    """The scan sees the whole package: every role's modules, and a sensible number of them."""
    assert len(SOURCES) > 40, sorted(SOURCES)
    for module in ("rlhf_gym", "rlhf_gym.lm.policy", "rlhf_gym.env.vector_env", "rlhf_gym.rewards.loading",
                   "rlhf_gym.pipeline.sft", "rlhf_gym.agents.common", "rlhf_gym.agents.sb3.train",
                   CATALOGUE, "rlhf_gym.envs.summarize", "rlhf_gym.worlds.build"):
        assert module in SOURCES, module
    assert len(IMPORTS) > 100
    assert any(imp.lazy for imp in IMPORTS), "no lazy import found (the CLI and the worlds have some)"


def test_every_internal_import_resolves() -> None:
    """Each ``rlhf_gym...`` import names a module of the package (no name left over from a move)."""
    unresolved = [f"{imp.where}: {imp.target}" for imp in IMPORTS if imp.target not in SOURCES]
    assert not unresolved, "imports of modules that do not exist:\n" + "\n".join(unresolved)


def test_no_import_cycles() -> None:
    """The module graph, lazy imports included, is acyclic."""
    graph = import_graph(IMPORTS)
    cycle = find_cycle(graph)
    if cycle:
        edges = [
            next(f"{imp.where}: {a} -> {b}" for imp in IMPORTS if (imp.source, imp.target) == (a, b))
            for a, b in zip(cycle, cycle[1:])
        ]
        raise AssertionError("import cycle:\n" + "\n".join(edges))


def test_layering() -> None:
    """The rules of `RULES` (docs/architecture.md, "What may import what")."""
    violations = layer_violations(IMPORTS)
    assert not violations, "layering violations:\n" + "\n".join(violations)


def test_lazy_tables_name_real_modules() -> None:
    """Module names written as strings (``rlhf_gym._LAZY``, ``AGENTS``, ``SUITE``) exist, and a
    lazy public name (``{"TokenVectorEnv": "rlhf_gym.env.vector_env", ...}``) is defined at the
    top level of its module. These are imported by computed names, so they are no graph edges."""
    problems = []
    for source in SOURCES.values():
        for node in ast.walk(source.tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"rlhf_gym(\.\w+)+", node.value):
                if node.value not in SOURCES:
                    problems.append(f"{source.path}:{node.lineno}: no module {node.value}")
            if isinstance(node, ast.Dict) and node.values and all(
                isinstance(k, ast.Constant) and isinstance(k.value, str) and k.value.isidentifier()
                and isinstance(v, ast.Constant) and v.value in SOURCES
                for k, v in zip(node.keys, node.values)
            ):
                for key, value in zip(node.keys, node.values):
                    if key.value not in top_level_names(SOURCES[value.value].tree):
                        problems.append(f"{source.path}:{key.lineno}: {value.value} defines no {key.value}")
    assert not problems, "\n".join(problems)


def top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level (definitions, assignments, imports)."""
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
    return names


# Self-tests: the checker sees what it must ---------------------------------------------------
def _synthetic(files: dict[str, str]) -> list[Import]:
    """Imports of synthetic modules ``{module name: source}`` (names ending ``.__init__`` are packages)."""
    sources = {}
    for name, text in files.items():
        is_package = name.endswith(".__init__")
        module = name.removesuffix(".__init__")
        sources[module] = Source(module, f"<{name}>", ast.parse(text), is_package)
    return all_imports(sources)


def test_checker_sees_lazy_imports_and_submodules() -> None:
    imports = _synthetic({
        "rlhf_gym.lm.__init__": "",
        "rlhf_gym.lm.a": (
            "import importlib\n"
            "from rlhf_gym.lm import b\n"  # a submodule: edge to rlhf_gym.lm.b
            "from rlhf_gym.lm.c import thing\n"  # a name: edge to rlhf_gym.lm.c
            "def f():\n"
            "    import rlhf_gym.env.x\n"  # lazy
            "    return importlib.import_module('rlhf_gym.agents.y')\n"  # lazy, by literal
            "from . import c\n"  # relative
        ),
        "rlhf_gym.lm.b": "",
        "rlhf_gym.lm.c": "thing = 1\n",
        "rlhf_gym.env.x": "",
        "rlhf_gym.agents.y": "",
    })
    edges = {(imp.target, imp.lazy) for imp in imports if imp.source == "rlhf_gym.lm.a"}
    assert edges == {
        ("rlhf_gym.lm.b", False), ("rlhf_gym.lm.c", False), ("rlhf_gym.env.x", True), ("rlhf_gym.agents.y", True),
    }
    # Both lazy imports break the lm rule; the first also reaches the env, the second the agents.
    violations = layer_violations(imports)
    assert len(violations) == 3, violations
    assert all("<rlhf_gym.lm.a>" in v for v in violations)


def test_checker_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    # A cycle through a lazy import, from sources; the package __init__ is its own node.
    imports = _synthetic({
        "rlhf_gym.rewards.__init__": "from rlhf_gym.rewards.p import P\n",
        "rlhf_gym.rewards.p": "def load():\n    from rlhf_gym.rewards.q import Q\n",
        "rlhf_gym.rewards.q": "from rlhf_gym.rewards.p import P\n",
    })
    assert find_cycle(import_graph(imports)) == ["rlhf_gym.rewards.p", "rlhf_gym.rewards.q", "rlhf_gym.rewards.p"]


def test_type_checking_imports_break_no_cycle_but_obey_the_layers() -> None:
    """An import under ``if TYPE_CHECKING:`` never runs, so it closes no cycle; it still
    counts for the layering rules (a type from a higher layer is still a dependency)."""
    imports = _synthetic({
        "rlhf_gym.worlds.a": "from rlhf_gym.worlds.b import B\n",
        "rlhf_gym.worlds.b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rlhf_gym.worlds.a import A\n",
        "rlhf_gym.lm.x": "import typing\nif typing.TYPE_CHECKING:\n    import rlhf_gym.env\nelse:\n    import rlhf_gym.rewards\n",
        "rlhf_gym.env": "", "rlhf_gym.rewards": "",
    })
    assert find_cycle(import_graph(imports)) is None
    flags = {(i.source, i.target): i.typing_only for i in imports}
    assert flags[("rlhf_gym.worlds.b", "rlhf_gym.worlds.a")] and not flags[("rlhf_gym.worlds.a", "rlhf_gym.worlds.b")]
    assert not flags[("rlhf_gym.lm.x", "rlhf_gym.rewards")]  # the else branch runs
    broken = [v for v in layer_violations(imports) if "rlhf_gym.lm.x -> rlhf_gym.env" in v]
    assert broken, layer_violations(imports)


def test_rules_allow_the_catalogue_only_to_registration() -> None:
    imports = _synthetic({
        "rlhf_gym.registration": "from rlhf_gym.envs import SUITE\n",
        "rlhf_gym.atomic_dir": "import rlhf_gym.envs\n",
        "rlhf_gym.agents.common": "from rlhf_gym.envs.summarize import TASK\n",
        "rlhf_gym.envs.summarize.world": "def f():\n    import rlhf_gym.agents\n",
        "rlhf_gym.envs.__init__": "",
        "rlhf_gym.envs.summarize.__init__": "TASK = 1\n",
        "rlhf_gym.agents.__init__": "",
    })
    broken = sorted(v.split(" breaks: ")[0].split(": ", 1)[1] for v in layer_violations(imports))
    assert broken == [
        "rlhf_gym.agents.common -> rlhf_gym.envs.summarize",
        "rlhf_gym.atomic_dir -> rlhf_gym.envs",
        "rlhf_gym.envs.summarize.world -> rlhf_gym.agents (lazy)",
    ]
