"""The package's shape: imports point one way (no circles, no upward imports), and its promises are checked.

The import graph is read from the source (every ``import``, at module level or
inside functions), so a circle cannot hide in a function body.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vlm_reward_wrappers"

LAYERS: dict[str, int] = {
    "version": 0,
    "info_keys": 0,
    "configs": 0,
    "io_utils": 0,
    "locking": 0,
    "tasks": 0,
    "extras": 0,
    "execution": 1,
    "config_cli": 1,
    "rendering": 1,
    "envs": 2,
    "data": 3,
    "objectives": 4,
    "models": 5,
    "metrics": 5,
    "training": 6,
    "evaluation": 7,
    "wrappers": 7,
    "study": 8,
    "rl": 9,
    "cli": 10,
    "__main__": 11,
}
"""Each top-level module or subpackage and its layer: a unit imports only units of lower layers."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules a source file imports (``from a import b`` is ``a.b`` when that is a module, else ``a``)."""
    tree = ast.parse(path.read_text())
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name.startswith("vlm_reward_wrappers")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = {target for target in imports_of(path, set(modules)) if target in modules and target != name}
    return edges


def unit(module: str) -> str:
    """The top-level module or subpackage a module belongs to ('' for the root package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_import_graph_has_no_circle() -> None:
    edges = graph()
    assert len(edges) > 40  # the graph was really read
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


def test_cycle_finder_finds_a_planted_circle() -> None:
    edges = graph()
    edges["vlm_reward_wrappers.tasks"] = {"vlm_reward_wrappers.wrappers.vector"}
    assert find_cycle(edges) is not None


def test_imports_point_down_the_layers() -> None:
    upward = []
    for source, targets in graph().items():
        if unit(source) == "":
            continue  # the root package: picks the GL backend (rendering) and names the version
        for target in targets:
            if unit(target) != unit(source) and LAYERS[unit(target)] >= LAYERS[unit(source)]:
                upward.append(f"{source} -> {target}")
    assert not upward, "imports that do not point down the layers:\n" + "\n".join(sorted(upward))


def test_every_unit_has_a_layer() -> None:
    units = {unit(name) for name in graph()} - {""}
    assert units == set(LAYERS), f"add new modules to LAYERS: {sorted(units ^ set(LAYERS))}"


@pytest.mark.parametrize("literal", ['"config.json"', '"model.safetensors"'])
def test_the_checkpoint_format_is_named_once(literal: str) -> None:
    """Only the checkpoint module knows its file names; everything else asks it (``is_checkpoint``)."""
    places = [
        str(path.relative_to(PACKAGE.parent))
        for root in (PACKAGE, PACKAGE.parent / "examples", PACKAGE.parent / "benchmarks")
        for path in root.rglob("*.py")
        if literal in path.read_text()
    ]
    assert places == ["vlm_reward_wrappers/models/checkpoint.py"], f"{literal} is spelled in {places}"


def literal_info_keys(source: str) -> list[str]:
    """``info["key"]``, ``infos["key"]`` and ``info.get("key")`` in code for the package's info keys."""
    from vlm_reward_wrappers import info_keys

    keys = {value for name, value in vars(info_keys).items() if name.isupper()}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            owner, key = node.value.id, node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            if not isinstance(node.func.value, ast.Name) or not node.args:
                continue
            owner, key = node.func.value.id, node.args[0]
        else:
            continue
        if owner in ("info", "infos", "final") and isinstance(key, ast.Constant) and key.value in keys:
            found.append(f"line {node.lineno}: {key.value}")
    return found


def test_info_keys_are_constants() -> None:
    """The package reads and writes info keys through :mod:`vlm_reward_wrappers.info_keys`, never as literals."""
    assert literal_info_keys('reward = info["gt_reward"] + infos.get("vlm_score")') == [
        "line 1: gt_reward",
        "line 1: vlm_score",
    ]
    places = {str(path): found for path in PACKAGE.rglob("*.py") if (found := literal_info_keys(path.read_text()))}
    assert not places, f"info keys spelled as literals: {places}"
