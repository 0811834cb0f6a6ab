"""The package's import graph: no circle, and every import points down the pipeline's stages.

The stages, lowest first, as ``src/paperwire/`` lays them out: what a stage may import is its own
modules and those of the stages listed before it. Every import counts, including those inside
functions (they only defer the cost) and those for type checking.
"""

from __future__ import annotations

import ast
from pathlib import Path

import paperwire

PACKAGE = Path(paperwire.__file__).resolve().parent

# Lowest first. A module belongs to the first entry that is it or a package above it.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        ("paperwire", "paperwire.errors", "paperwire.paper", "paperwire.tex", "paperwire.redact",
         "paperwire.deadline"),
    ),
    ("config", ("paperwire.config",)),
    ("store", ("paperwire.store",)),
    ("links", ("paperwire.links",)),
    ("sources", ("paperwire.sources",)),
    ("rank", ("paperwire.rank",)),
    ("render", ("paperwire.render",)),
    ("deliver", ("paperwire.deliver",)),
    ("web", ("paperwire.web",)),
    (
        "orchestration",
        ("paperwire.digests", "paperwire.schedule", "paperwire.pipeline", "paperwire.status",
         "paperwire.daemon",
         "paperwire.cli", "paperwire.__main__"),
    ),
]  # fmt: skip


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's own modules that ``name`` imports, anywhere in its text."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_package:
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from . import x` imports the module x when there is one, else a name of `.`
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` names a.b.c's module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def stage_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "paperwire"):
            return index
    if module == "paperwire":
        return 0
    raise AssertionError(f"{module} is in no stage: add it to STAGES")


def test_every_module_is_in_a_stage():
    for module in graph():
        stage_of(module)


def test_imports_point_down_the_stages():
    upward = []
    for module, targets in sorted(graph().items()):
        for target in sorted(targets):
            if stage_of(target) > stage_of(module):
                upward.append(
                    f"{module} ({STAGES[stage_of(module)][0]}) imports {target} "
                    f"({STAGES[stage_of(target)][0]})"
                )
    assert upward == []


def test_no_import_cycle():
    edges = graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert cycles == []
