"""The architecture, checked: no import cycles, and each layer imports only the layers below it.

Every import counts, also those inside functions (kept there to load a library
only when it is used): a lazy import is still a dependency.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "hal", "boards", "tools")

# Which top-level parts a part may import (besides itself and the standard library/dependencies).
ALLOWED = {
    "hal.runtime": set(),
    "hal": {"hal.runtime"},
    "boards": {"hal", "hal.runtime"},
    "agent.core": {"hal", "hal.runtime"},
    "agent.store": {"agent.core", "hal", "hal.runtime"},
    "agent.security": {"agent.core", "hal", "hal.runtime"},
    "agent.transfer": {"agent.core", "hal", "hal.runtime"},
    "agent.update": {"agent.core", "agent.security", "agent.transfer", "hal", "hal.runtime"},
    "agent.ocppj": {"agent.core", "agent.security", "hal", "hal.runtime"},
    "agent.ocpp16": {"agent.core", "agent.ocppj", "agent.security", "hal", "hal.runtime"},
    "agent.ocpp201": {"agent.core", "agent.ocppj", "agent.security", "hal", "hal.runtime"},
    "agent.link": {"agent.core", "agent.security", "agent.ocppj", "agent.ocpp16", "agent.ocpp201", "hal", "hal.runtime"},
    "agent.app": {"agent.core", "agent.security", "agent.store", "agent.ocppj", "agent.ocpp16", "agent.ocpp201", "agent.link",
                  "agent.transfer", "agent.update", "boards", "hal", "hal.runtime"},
    "tools": {"agent.core", "agent.security", "agent.store", "agent.ocppj", "agent.ocpp16", "agent.ocpp201", "agent.link",
              "agent.app", "agent.transfer", "agent.update", "boards", "hal", "hal.runtime"},
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "node_modules" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imports(path: pathlib.Path, name: str, modules: dict) -> set:
    """The project modules ``name`` imports (a name imported from a package counts as
    its submodule when there is one)."""
    out = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base + "." + a.name if base + "." + a.name in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _part(module: str) -> str:
    for part in sorted(ALLOWED, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    return module.split(".")[0]


def _graph() -> dict:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for module, targets in sorted(_graph().items()):
        part = _part(module)
        if part in ("agent", "hal") and module in ("agent", "hal"):
            continue
        for t in sorted(targets):
            t_part = _part(t)
            if t_part != part and t_part not in ALLOWED.get(part, set()):
                wrong.append("%s -> %s" % (module, t))
    assert wrong == []


def test_hal_never_imports_agent():
    graph = _graph()
    assert [(m, t) for m, ts in graph.items() if m.startswith("hal") for t in ts if t.startswith("agent")] == []


def test_the_checker_sees_a_cycle_and_a_violation():
    """The walk itself works: a made-up graph with a cycle is caught."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = _graph()
    assert "agent.core.model" in graph["agent.core.station"]
    assert "hal.runtime.clock" in graph["hal.pn532"]
