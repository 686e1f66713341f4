"""
No import cycles in jabberapp: the modules' imports, read from their source, form no loop.

What counts as an import of module M by module A (the rules the walker below applies):

- Every import statement in A counts, wherever it is: at module level, in a function, in a
  class body or under ``if TYPE_CHECKING``. An import inside a function does not run at load
  time, but it still makes A depend on M: a lazy import hides a cycle from the interpreter,
  not from the reader, and the cycles the house issue names (``sasl/__init__`` and its
  mechanisms, ``storage`` and ``plugins``) ran through such imports. This is also what
  /work/shared/tools/house_check.py counts.
- ``import a.b.c`` imports a.b.c; ``from a.b import c`` imports a.b.c when that is a module
  (``from package import submodule``) and a.b itself when c is a name a.b's code defines.
  Relative imports (``from . import x``, ``from ..y import z``) are resolved first.
- Importing a module runs the ``__init__`` of every package above it first, so importing a.b.c
  also imports a and a.b -- except the packages that contain A itself: Python has entered
  those before A's code runs, so for A the import runs nothing of them. So a package whose
  ``__init__`` re-exports its submodules is not a cycle while its submodules import each other,
  and is one as soon as a submodule takes a name from the package (``from jabberapp.xml import
  element`` inside jabberapp/xml/) or a module outside the package that the ``__init__`` loads
  imports any of its submodules (jabberapp.errors importing jabberapp.xml.ns, whose
  ``__init__`` loaded the parser, which imports jabberapp.errors: the cycle this test was
  written after). house_check.py is stricter here: it also counts those enclosing packages,
  so it reports a package face as a cycle; the packages of jabberapp satisfy both.

Only modules of the package itself are nodes: imports of the standard library and of other
distributions cannot close a loop through jabberapp.
"""
from __future__ import annotations

import ast
import os
import shutil
import tempfile
import textwrap

from twisted.trial.unittest import SynchronousTestCase

import jabberapp

# Cycles known to exist on main while other work removes them, each as the set of modules in
# it (one strongly connected component). Remove an entry when its cycle is gone; a cycle that
# is not listed here, or a listed one that gains a module, fails the test.
KNOWN_CYCLES: list[frozenset[str]] = [
]


def package_modules(root: str, package: str) -> dict[str, str]:
    """Dotted module name -> file path, for every .py file of the package at C{root}."""
    modules = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        relative = os.path.relpath(directory, root)
        parts = [package] + ([] if relative == "." else relative.split(os.sep))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            if name == "__init__.py":
                modules[".".join(parts)] = os.path.join(directory, name)
            else:
                modules[".".join(parts + [name[:-3]])] = os.path.join(directory, name)
    return modules


def _ancestors(name: str) -> list[str]:
    """'a.b.c' -> ['a', 'a.b']."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports_of(module: str, tree: ast.AST, is_package: bool, known: set[str]) -> set[str]:
    """The modules of C{known} that the source C{tree} of C{module} imports (rules above)."""
    inside = set(_ancestors(module)) | ({module} if is_package else set())
    found: set[str] = set()

    def loads(name: str) -> None:
        # Importing `name` runs it and every package above it, but not the packages that
        # contain `module` itself (already entered before `module` runs).
        found.add(name)
        found.update(parent for parent in _ancestors(name) if parent not in inside)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                loads(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names_taken = False
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:
                    loads(submodule)
                else:
                    names_taken = True     # a name (or '*') defined by base's own code
            if names_taken:
                loads(base)
            elif base not in inside:
                loads(base)                # `from P import sub` runs P's __init__ first
    found.discard(module)
    return found & known


def module_graph(root: str, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, for the package whose directory is C{root}."""
    modules = package_modules(root, package)
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        graph[name] = imports_of(name, tree, path.endswith("__init__.py"), known)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def describe(component: frozenset[str], graph: dict[str, set[str]]) -> str:
    """One loop through C{component}, as 'a -> b -> a', to show where the cycle runs."""
    first = min(component)
    seen = {first}
    # Walk the shortest way back to `first` (breadth first) inside the component.
    frontier = {first: [first]}
    while frontier:
        following = {}
        for node, trail in frontier.items():
            for successor in sorted(graph[node] & component):
                if successor == first:
                    return " -> ".join(trail + [first])
                if successor not in seen:
                    seen.add(successor)
                    following[successor] = trail + [successor]
        frontier = following
    raise AssertionError(f"{sorted(component)} is not a cycle")


class JabberappHasNoCyclesTests(SynchronousTestCase):
    def test_no_import_cycles(self):
        """The modules of jabberapp import each other without a cycle (known ones aside)."""
        root = os.path.dirname(os.path.abspath(jabberapp.__file__))
        graph = module_graph(root, "jabberapp")
        self.assertIn("jabberapp.xml.parser", graph)      # the walk found the package
        unexpected = [component for component in cycles(graph)
                      if component not in KNOWN_CYCLES]
        self.assertEqual(
            sorted(describe(component, graph) for component in unexpected), [],
            "import cycles (remove them; a lazy import inside a function still counts)")


class WalkerTests(SynchronousTestCase):
    """The walker itself, on small packages written to a temporary directory."""

    def package(self, files: dict[str, str]) -> dict[str, set[str]]:
        """The module graph of package 'pkg' made of C{files} (path -> source)."""
        top = tempfile.mkdtemp(prefix="jabberapp-cycles-")
        self.addCleanup(shutil.rmtree, top)
        for path, source in files.items():
            full = os.path.join(top, "pkg", path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as f:
                f.write(textwrap.dedent(source))
        return module_graph(os.path.join(top, "pkg"), "pkg")

    def test_cycle_run_through_init(self):
        """A module that imports a submodule of a package whose __init__ imports it back is
        in a cycle through that __init__ (the old errors -> xml -> parser -> errors)."""
        graph = self.package({
            "__init__.py": "",
            "errors.py": "from pkg.xml.ns import NS\n",
            "xml/__init__.py": "from pkg.xml.parser import Parser\n",
            "xml/ns.py": "NS = 'x'\n",
            "xml/parser.py": "from pkg import errors\nfrom pkg.xml.ns import NS\n",
        })
        self.assertEqual(cycles(graph),
                         [frozenset({"pkg.errors", "pkg.xml", "pkg.xml.parser"})])

    def test_cycle_through_name_of_init(self):
        """A submodule taking a name from its own package's __init__, which imports the
        submodule, is a cycle."""
        graph = self.package({
            "__init__.py": "from pkg.a import A\nHELPER = 1\n",
            "a.py": "from pkg import HELPER\nA = HELPER\n",
        })
        self.assertEqual(cycles(graph), [frozenset({"pkg", "pkg.a"})])

    def test_package_face_is_not_a_cycle(self):
        """An __init__ re-exporting submodules that import each other (but nothing from the
        package itself) is not a cycle."""
        graph = self.package({
            "__init__.py": "from pkg.a import A\nfrom pkg.b import B\n",
            "a.py": "from pkg.b import B\nA = B\n",
            "b.py": "from . import c\nB = c.C\n",
            "c.py": "C = 1\n",
        })
        self.assertEqual(graph["pkg.a"], {"pkg.b"})
        self.assertEqual(graph["pkg.b"], {"pkg.c"})
        self.assertEqual(cycles(graph), [])

    def test_lazy_import_counts(self):
        """An import inside a function closes a cycle as an import at module level does."""
        graph = self.package({
            "__init__.py": "",
            "mechanisms/__init__.py": ("def table():\n"
                                       "    from pkg.mechanisms.plain import Plain\n"
                                       "    return Plain\n"
                                       "class Context: pass\n"),
            "mechanisms/plain.py": "from pkg.mechanisms import Context\nclass Plain: pass\n",
        })
        self.assertEqual(cycles(graph),
                         [frozenset({"pkg.mechanisms", "pkg.mechanisms.plain"})])

    def test_relative_and_submodule_imports(self):
        """Relative imports and 'from package import submodule' are resolved to modules,
        and importing a submodule from outside runs its package's __init__."""
        graph = self.package({
            "__init__.py": "",
            "top.py": "from .sub import leaf\nimport pkg.other\n",
            "other.py": "",
            "sub/__init__.py": "",
            "sub/leaf.py": "from .. import other\nfrom ..other import *\n",
        })
        self.assertEqual(graph["pkg.top"], {"pkg.sub", "pkg.sub.leaf", "pkg.other"})
        self.assertEqual(graph["pkg.sub.leaf"], {"pkg.other"})
        self.assertEqual(graph["pkg"], set())

    def test_cycle_described(self):
        """A cycle is described as one loop through its modules, to show where it runs."""
        graph = self.package({
            "__init__.py": "",
            "a.py": "import pkg.b\n",
            "b.py": "def f():\n    import pkg.c\n",
            "c.py": "from pkg.a import x\n",
        })
        [component] = cycles(graph)
        self.assertEqual(describe(component, graph), "pkg.a -> pkg.b -> pkg.c -> pkg.a")
