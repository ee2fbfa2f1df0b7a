"""Imports point one way: commands -> driver and stages (jobs) -> cluster -> deployments (actors) -> engines -> core.

Read from the source (AST), imports inside functions included, since those are where a backward import
hides. The layers, lowest first:

    core       pure logic and the contracts (engine_api, judge API, run_layout): no Ray, no torch
    settings   alma.config, alma.checkpoints, alma.seedsets, alma.judge_client: typed config and resources
    engines    inference backends behind core.engine_api
    actors     Ray Serve deployments and Ray Data callers
    cluster    starting Ray, deploying apps, rendering manifests
    jobs       the driver and its stages (Ray)
    commands   status, report, eval, judge eval, data: read a run folder, no Ray
    cli        alma.cli, the console script
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"core": "alma.core", "engines": "alma.engines", "actors": "alma.actors", "cluster": "alma.cluster",
            "jobs": "alma.jobs", "commands": "alma.commands", "alma": "alma"}
RANK = {"alma.core": 0, "settings": 1, "alma.engines": 2, "alma.actors": 3, "alma.cluster": 4, "alma.jobs": 5,
        "alma.commands": 6, "cli": 7}
SETTINGS = {"alma.config", "alma.checkpoints", "alma.seedsets", "alma.judge_client"}
HEAVY = ("ray", "torch", "vllm", "transformers", "trl")


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def layer(module: str) -> str:
    if module == "alma.cli":
        return "cli"
    if module in SETTINGS or module == "alma":
        return "settings"
    for package in ("alma.core", "alma.engines", "alma.actors", "alma.cluster", "alma.jobs", "alma.commands"):
        if module == package or module.startswith(package + "."):
            return package
    raise AssertionError(f"{module} is in no layer; add it to tests/test_layers.py")


def imports(path: Path, known: set[str], typing_only: bool = True) -> list[tuple[int, str]]:
    """(line, module) of every alma module and every third-party package `path` imports; without
    `typing_only`, not those under `if TYPE_CHECKING:` (annotations only: no import at run time)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    if not typing_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from alma.core import report_data` imports the module alma.core.report_data
            out += [(node.lineno, f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module)
                    for a in node.names]
    return out


MODULES = modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    here = layer(module)
    wrong = [f"{MODULES[module].relative_to(ROOT)}:{line} imports {target} ({layer(target)})"
             for line, target in imports(MODULES[module], set(MODULES))
             if target in MODULES and RANK[layer(target)] > RANK[here]]
    assert not wrong, f"{module} is in layer {here}: " + "; ".join(wrong)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "alma.core"))
def test_core_imports_no_ray_or_torch(module):
    heavy = [f"line {line}: {target}" for line, target in imports(MODULES[module], set(MODULES))
             if target.split(".")[0] in HEAVY]
    assert not heavy, f"{module} is pure by the style guide, yet imports " + ", ".join(heavy)


def test_no_import_cycles():
    graph = {m: {t for _, t in imports(p, set(MODULES), typing_only=False) if t in MODULES and t != m} for m, p in MODULES.items()}
    # The package __init__ files import nothing; a module "importing" its package is not a cycle.
    graph = {m: {t for t in targets if t not in PACKAGES.values()} for m, targets in graph.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_checker_sees_a_backward_import(tmp_path):
    """The rule itself can fail: a core module importing the engines is caught, inside a function too."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from alma.engines.factory import load_engine\n    import torch\n")
    found = imports(bad, set(MODULES))
    assert (2, "alma.engines.factory") in found and (3, "torch") in found
    assert RANK[layer("alma.engines.factory")] > RANK[layer("alma.core.scoring")]
