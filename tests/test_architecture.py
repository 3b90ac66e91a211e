"""The shape of the package, checked from its source with ``ast`` (docs/ARCHITECTURE.md, "Code map"):

- no import cycle between the library's modules (module-level imports);
- nothing in the library imports the command line (``osdface.cli``) or the demo (``osdface.app``);
- no private name (``_x``) is imported from another module;
- one place for each shared job: float → 8-bit rounding only in ``image_io``, the dtype table only in ``devices``,
  weight files read only through ``weights`` (``torch.load`` nowhere else), argument parsers only in ``cli`` (and
  the demo's own launcher);
- one preset registry and one metric registry (the names other modules use come from there).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "osdface"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    # assets/ holds model folders, whose .py files are verbatim copies of package modules (osdface.remote_code)
    return {_module_name(p): (p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(PACKAGE.rglob("*.py"))
            if p.relative_to(PACKAGE).parts[0] != "assets"}


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``from ... import`` reads from."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, tree: ast.Module, top_level_only: bool):
    """(imported module, names, line) for every import (module level only, or anywhere)."""
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            yield target, [a.name for a in node.names], node.lineno


def _internal(target: str, names: list[str]) -> list[str]:
    """The osdface modules an import makes Python load (a ``from pkg import sub`` loads ``pkg.sub``)."""
    if not target.startswith("osdface"):
        return []
    out = [target]
    out += [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
    return [m for m in out if m in MODULES]


def test_no_import_cycles_at_module_level():
    graph = {m: set() for m in MODULES}
    for module, (path, tree) in MODULES.items():
        for target, names, _ in _imports(module, path, tree, top_level_only=True):
            for dep in _internal(target, names):
                if dep != module and not module.startswith(dep + "."):  # a package's own __init__ is not a cycle
                    graph[module].add(dep)
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_demo_modules_form_no_circle_even_through_lazy_imports():
    """Inside osdface.app the launcher, the restorer and the page import each other only downwards (shared
    constants live in osdface.app.defaults), counting the imports inside functions too."""
    demo = {m: v for m, v in MODULES.items() if m.startswith("osdface.app.")}
    graph = {m: set() for m in demo}
    for module, (path, tree) in demo.items():
        for target, names, _ in _imports(module, path, tree, top_level_only=False):
            graph[module] |= {d for d in _internal(target, names) if d in demo and d != module}
    cycles = [(a, b) for a in graph for b in graph[a] if _reaches(graph, b, a)]
    assert not cycles, f"import circles in osdface.app: {cycles}"


def _reaches(graph: dict, start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return False


def test_the_library_never_imports_the_command_line_or_the_demo():
    offenders = []
    for module, (path, tree) in MODULES.items():
        if module.startswith(("osdface.cli", "osdface.app")) or module == "osdface.__main__":
            continue
        for target, names, line in _imports(module, path, tree, top_level_only=False):
            for dep in [target] + [f"{target}.{n}" for n in names]:
                if dep.startswith(("osdface.cli", "osdface.app")):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {dep}")
    assert not offenders, offenders


def test_no_private_name_is_imported_from_another_module():
    offenders = []
    for module, (path, tree) in MODULES.items():
        for target, names, line in _imports(module, path, tree, top_level_only=False):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target.startswith("osdface"):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {private} from {target}")
    assert not offenders, offenders


def _calls(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            yield owner, name, node


def _is_255(node) -> bool:
    return isinstance(node, ast.Constant) and node.value in (255, 255.0)


@pytest.mark.parametrize("rule, home, check", [
    # the plain-diffusers pipeline must not import osdface: it repeats the rule (tests/test_plain_diffusers.py
    # checks its PIL output against OSDFacePipeline's)
    ("float → uint8 rounding (rint/round/floor of a value scaled by 255)",
     {"osdface.image_io", "osdface.models.diffusers_pipeline"},
     lambda tree: any(name in ("rint", "round", "floor") and any(_is_255(n) for a in call.args for n in ast.walk(a))
                      for _, name, call in _calls(tree))),
    ("torch.load (weights are read through osdface.weights)", {"osdface.weights", "osdface.convert"},
     lambda tree: any(owner == "torch" and name == "load" for owner, name, _ in _calls(tree))),
    ("argparse parsers (commands live in osdface.cli)", {"osdface.app.launch"},
     lambda tree: any(owner == "argparse" and name == "ArgumentParser" for owner, name, _ in _calls(tree))),
])
def test_one_place_for_each_shared_job(rule, home, check):
    found = sorted(m for m, (_, tree) in MODULES.items()
                   if check(tree) and m not in home and not m.startswith("osdface.cli"))
    assert not found, f"{rule} outside {sorted(home)}: {found}"


def test_one_dtype_table():
    """``{"fp32": torch.float32, ...}`` exists once, in osdface.devices."""
    found = []
    for module, (_, tree) in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "bf16" for k in node.keys):
                if any(isinstance(v, ast.Attribute) and v.attr == "bfloat16" for v in node.values):
                    found.append(module)
    assert found == ["osdface.devices"], found


def test_one_preset_registry_and_one_metric_registry():
    from osdface.configs import PRESETS
    from osdface.eval.metrics import DEFAULT_FR_METRICS, METRICS, NO_REFERENCE, REAL_ORDER, SYNTHETIC_ORDER
    from osdface.training.config import get_train_config

    # every training preset is a stage of a model preset of the one registry
    for name, preset in PRESETS.items():
        for stage in preset.training:
            assert get_train_config(stage, name).preset == name
    # the derived lists only name registered metrics, each built by its registered factory
    assert set(SYNTHETIC_ORDER) == set(METRICS) and set(REAL_ORDER) <= set(METRICS)
    assert set(DEFAULT_FR_METRICS) <= set(METRICS) and NO_REFERENCE <= set(METRICS)
    assert all(info.factory is not None for info in METRICS.values())
    def targets(node):
        if isinstance(node, ast.Assign):
            return node.targets
        return [node.target] if isinstance(node, ast.AnnAssign) else []

    defined = [m for m, (_, tree) in MODULES.items() for node in ast.walk(tree) for t in targets(node)
               if isinstance(t, ast.Name) and t.id in ("PRESETS", "TRAIN_PRESETS", "METRICS")]
    assert sorted(defined) == ["osdface.configs", "osdface.eval.metrics"], defined
