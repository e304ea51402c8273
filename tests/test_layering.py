"""The package's shape, read from its import statements (issue 15 item 7).

- no import circle between maillab's modules, `if TYPE_CHECKING:` imports counted too;
- the engine imports no Textual or Rich: only the TUI does (the engine runs headless in
  `maillab serve`);
- no module but the supervisor takes the whole lab: `LabContext` is built by `lab/supervisor.py` and
  every part declares the narrow context it uses (a Protocol the LabContext satisfies);
- the base (`maillab/base/`: events, clock, sans-IO types, errors, file helpers) imports nothing
  else of maillab;
- the top level reads like the course's component diagram: packages by role (base, net, the
  MTA, the lab's supervisor, DNS, SMTP, the queue, the store, IMAP, POP3, the TUI) and no loose
  module but the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import maillab

ROOT = Path(maillab.__file__).parent
UI_LIBRARIES = ("textual", "rich")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()
BASE = {name for name in MODULES if name.startswith("maillab.base")}


def _imports(name: str) -> set[str]:
    """Every module `name` imports (maillab's resolved to a module, others by top-level name)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        for t in targets:
            if not t.startswith("maillab"):
                found.add(t.split(".")[0])
                continue
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def test_no_import_circle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:                       # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in MODULES:
                continue
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
                circles.append(sorted(component))

    for name in sorted(MODULES):
        if name not in index:
            visit(name)
    assert circles == []


def test_only_the_tui_imports_textual_or_rich():
    offenders = {name: sorted(GRAPH[name] & set(UI_LIBRARIES)) for name in MODULES
                 if not name.startswith("maillab.tui") and GRAPH[name] & set(UI_LIBRARIES)}
    assert offenders == {}


def test_only_the_supervisor_takes_the_whole_lab():
    takers = sorted(name for name in MODULES if "maillab.lab.context" in GRAPH[name])
    assert takers == ["maillab.lab.supervisor"]


def test_the_base_imports_nothing_else_of_maillab():
    assert BASE <= set(MODULES)
    outside = {name: sorted(m for m in GRAPH[name] if m.startswith("maillab") and m not in BASE) for name in BASE}
    assert outside == {name: [] for name in BASE}


def test_the_top_level_holds_packages_by_role_and_the_command_line():
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["__init__.py", "__main__.py", "cli.py"]
    assert sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()) == [
        "auth", "base", "dns", "imap", "lab", "mta", "mua", "net", "pop3", "queue", "smtp", "store", "tui", "worlds"]
