"""The package architecture (issue 25): one path per module, a layer order, no cycles, one layout.

* every ``dropnet_tf`` module path that is imported (by the library, the scripts, the tests,
  and the Python code blocks of every Markdown page) or named in a docstring or page exists
  on disk: there are no aliases of former paths;
* a name is imported from the module that defines it (or from a package's ``__init__``), not
  through a module that only imports it;
* the layer order written in ``dropnet_tf/__init__``'s docstring holds: no module imports
  from a layer above its own, nor from another package of its own layer (the method
  packages never import each other), at module level or inside a function; the library
  imports neither the paper scripts nor the benchmarks, and the scripts' kit none of them;
* the modules of the library import each other without a cycle;
* no module imports a private name (or a private module) from another package;
* the README's Layout section lists every package and module on disk, and nothing else;
* ``import dropnet_tf`` does not import plotting (matplotlib).
"""

from __future__ import annotations

import ast
import functools
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: Code whose imports are checked; the tests are checked for former paths only.
CHECKED = ("dropnet_tf", "paper_experiments", "bench")

#: Markdown pages whose Python code blocks and module names are checked.
PAGES = sorted(
    [ROOT / "README.md", ROOT / "paper_experiments" / "README.md", ROOT / "bench" / "README.md",
     ROOT / "tests" / "README.md"] + list((ROOT / "docs").glob("*.md"))
)


def _where(path: pathlib.Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


# --------------------------------------------------------------------------------------------
# Modules on disk
# --------------------------------------------------------------------------------------------


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _library_files() -> list[pathlib.Path]:
    return sorted((ROOT / "dropnet_tf").rglob("*.py"))


MODULES = {_module_name(path): path for path in _library_files()}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


@functools.lru_cache(maxsize=None)
def _bound_names(package: str) -> set[str]:
    """Names a package's ``__init__`` binds at its top (imports, definitions, assignments)."""
    tree = ast.parse(MODULES[package].read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    if "__getattr__" in names and package == "dropnet_tf":
        names.add("plotting")  # imported lazily by the package's __getattr__
    return names


def _missing_path(dotted: str) -> str | None:
    """The first part of ``dotted`` (a module, maybe followed by attributes) that is not there.

    ``dropnet_tf.core.selection.select_units`` is fine; ``dropnet_tf.selection`` (a former
    path) and ``dropnet_tf.core.nothing`` are not.  After a module that is not a package the
    rest is attributes, which are not checked.
    """
    parts = dotted.split(".")
    current = parts[0]
    for part in parts[1:]:
        if current not in PACKAGES or part.startswith("__"):
            return None  # a module's attribute
        candidate = f"{current}.{part}"
        if candidate in MODULES:
            current = candidate
            continue
        if part in _bound_names(current):
            return None  # a name the package exports
        return candidate
    return None


def _imports(tree: ast.AST):
    """``(line, module)`` of every ``dropnet_tf`` import, and of each ``from package import name``
    whose name is a submodule; at module level and inside functions alike."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    yield node.lineno, f"{node.module}.{alias.name}"


def _code_blocks(page: pathlib.Path):
    """``(first line, source)`` of each Python code block of a Markdown page."""
    lines = page.read_text(encoding="utf-8").splitlines()
    block, start, language = None, 0, ""
    for number, line in enumerate(lines, 1):
        fence = re.match(r"^\s*```(\w*)", line)
        if fence and block is None:
            block, start, language = [], number + 1, fence.group(1)
        elif fence:
            if language in ("python", "py"):
                yield start, "\n".join(block)
            block = None
        elif block is not None:
            block.append(line)


_DOTTED = re.compile(r"(?<![\w./])dropnet_tf(?:\.\w+)+")
_SLASHED = re.compile(r"(?<![\w./])dropnet_tf(?:/\w+)+(?:\.py)?")


def _text_findings(path: pathlib.Path, text: str, first_line: int = 1) -> list[str]:
    """Module names in prose (docstrings, comments, pages) that name no module on disk."""
    found = []
    for number, line in enumerate(text.splitlines(), first_line):
        for match in _DOTTED.finditer(line):
            missing = _missing_path(match.group(0).rstrip("."))
            if missing:
                found.append(f"{_where(path, number)}: names {match.group(0)!r}, but {missing} is not a module")
        for match in _SLASHED.finditer(line):
            relative = match.group(0)
            if not (ROOT / relative).exists() and not (ROOT / (relative + ".py")).exists():
                found.append(f"{_where(path, number)}: names the path {relative!r}, which does not exist")
    return found


def _path_findings(path: pathlib.Path, source: str, first_line: int = 1) -> list[str]:
    tree = ast.parse(source, filename=str(path))
    found = []
    for line, module in _imports(tree):
        if module.split(".")[0] == "dropnet_tf" and module not in MODULES:
            found.append(f"{_where(path, line + first_line - 1)}: imports {module!r}, which is not a module on disk")
    for node in ast.walk(tree):
        # from <package> import <name>: a submodule on disk or a name the package binds.
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in PACKAGES:
            for alias in node.names:
                missing = alias.name != "*" and _missing_path(f"{node.module}.{alias.name}")
                if missing:
                    found.append(f"{_where(path, node.lineno + first_line - 1)}: imports {missing!r}, "
                                 "which is neither a module on disk nor a name of its package")
    return found


def test_every_imported_or_named_module_exists():
    found = []
    for top in CHECKED + ("tests",):
        for path in sorted((ROOT / top).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            found += _path_findings(path, source)
            if path != pathlib.Path(__file__).resolve():  # this file's probes name former paths on purpose
                found += _text_findings(path, source)
    for page in PAGES:
        for start, source in _code_blocks(page):
            found += _path_findings(page, source, start)
        found += _text_findings(page, page.read_text(encoding="utf-8"))
    assert not found, "Paths that exist on no disk:\n" + "\n".join(found)


def test_the_path_check_catches_former_paths():
    probe = ROOT / "tests" / "probe.py"  # never written; only its source is parsed
    source = (
        "from dropnet_tf.iterative import TrainingConfig\n"       # a former path
        "import dropnet_tf._keras\n"                                # a former private path
        "from dropnet_tf.foresight import models\n"                 # a former submodule
        "from dropnet_tf.core.selection import select_units\n"      # fine
        "from dropnet_tf import MaskLayer, models\n"                 # fine: a name and a package
        "'''See dropnet_tf.selection and dropnet_tf/standins.py'''\n"
        "'''See dropnet_tf.core.selection.select_units and dropnet_tf/data/standins.py'''\n"
    )
    text = "\n".join(_path_findings(probe, source) + _text_findings(probe, source))
    assert "probe.py:1: imports 'dropnet_tf.iterative'" in text
    assert "probe.py:2: imports 'dropnet_tf._keras'" in text
    assert "probe.py:3: names 'dropnet_tf.foresight.models'" not in text  # an import, not prose
    assert "probe.py:3" in text and "dropnet_tf.foresight.models" in text
    assert "probe.py:4" not in text and "probe.py:5" not in text and "probe.py:7" not in text
    assert "probe.py:6: names 'dropnet_tf.selection'" in text and "'dropnet_tf/standins.py'" in text


@functools.lru_cache(maxsize=None)
def _definitions(module: str) -> tuple[set[str], dict[str, tuple[str, str]]]:
    """(names a module defines at its top, {name it imports: (from module, original name)})."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    defined: set[str] = set()
    imported: dict[str, tuple[str, str]] = {}
    for statement in tree.body:
        if isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
            for alias in statement.names:
                imported[alias.asname or alias.name] = (statement.module, alias.name)
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Import):  # import keras, import tensorflow as tf (also inside try/if)
                imported.update({(a.asname or a.name).split(".")[0]: (a.name, a.name) for a in node.names})
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.update({a.asname or a.name: (node.module, a.name) for a in node.names})
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not statement:
                break
    return defined, imported


def _home(module: str, name: str) -> str | None:
    """The module that defines ``name``, following the imports of the modules on the way."""
    for _ in range(20):
        defined, imported = _definitions(module)
        if name in defined or name not in imported:
            return module if name in defined else None
        module, name = imported[name]
        if module not in MODULES:
            return None
    return None


def _reexport_findings(path: pathlib.Path, source: str) -> list[str]:
    """``from <plain module> import <name>`` where the module only imported the name itself.

    A package's ``__init__`` may gather public names (``from dropnet_tf import add_masks``);
    a plain module is imported for what it defines.
    """
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in MODULES
                and node.module not in PACKAGES):
            continue
        for alias in node.names:
            if alias.name == "*" or f"{node.module}.{alias.name}" in MODULES:
                continue
            defined, imported = _definitions(node.module)
            if alias.name not in defined and alias.name not in imported:
                found.append(f"{_where(path, node.lineno)}: imports {alias.name} from {node.module}, which has no such name")
                continue
            home = _home(node.module, alias.name)
            if home is not None and home != node.module:
                found.append(f"{_where(path, node.lineno)}: imports {alias.name} from {node.module}; it lives in {home}")
    return found


def test_names_are_imported_from_the_module_that_defines_them():
    found = [f for top in CHECKED + ("tests",) for path in sorted((ROOT / top).rglob("*.py"))
             for f in _reexport_findings(path, path.read_text(encoding="utf-8"))]
    assert not found, "Names imported through a module that only imports them:\n" + "\n".join(found)


def test_the_reexport_check_catches_a_second_path():
    probe = ROOT / "tests" / "probe.py"  # never written; only its source is parsed
    source = (
        "from dropnet_tf.dropnet.iterative import TrainingConfig, iterative_prune\n"  # TrainingConfig: engines
        "from dropnet_tf.engines.config import TrainingConfig\n"                     # its home
        "from dropnet_tf import TrainingConfig\n"                                    # a package's public name
        "from dropnet_tf.foresight.tfmot.baseline import normalise_optimizer_spec\n"  # no such name there
    )
    text = "\n".join(_reexport_findings(probe, source))
    assert "probe.py:1: imports TrainingConfig from dropnet_tf.dropnet.iterative; it lives in dropnet_tf.engines.config" in text
    assert "iterative_prune" not in text and "probe.py:2" not in text and "probe.py:3" not in text
    assert "probe.py:4: imports normalise_optimizer_spec from dropnet_tf.foresight.tfmot.baseline, which has no such name" in text


# --------------------------------------------------------------------------------------------
# The layer order
# --------------------------------------------------------------------------------------------


def layer_order() -> list[list[str]]:
    """The layers, bottom first, as the package docstring writes them (``a < b, c < d``)."""
    docstring = ast.get_docstring(ast.parse(MODULES["dropnet_tf"].read_text(encoding="utf-8")))
    lines = [line.strip() for line in docstring.splitlines() if line.strip().startswith("core <")]
    assert len(lines) == 1, "dropnet_tf's docstring states the layer order once, on a line 'core < ...'"
    return [[name.strip() for name in layer.split(",")] for layer in lines[0].split("<")]


def _unit(module: str) -> str:
    """The unit of the layer order a module belongs to: its package under dropnet_tf, or the
    top-level module (``plotting``); ``dropnet_tf`` itself (the package) is above all."""
    parts = module.split(".")
    return "dropnet_tf" if len(parts) == 1 else parts[1]


def _rank(unit: str, order) -> int:
    if unit == "dropnet_tf":
        return len(order)
    for rank, layer in enumerate(order):
        if unit in layer:
            return rank
    raise AssertionError(f"{unit!r} is in no layer of the order {order}")


def _layer_findings(path: pathlib.Path, source: str, order) -> list[str]:
    """Imports of a library file that go up the order or sideways, and imports of the scripts."""
    own = _module_name(path)
    found = []
    for line, module in _imports(ast.parse(source, filename=str(path))):
        top = module.split(".")[0]
        if top in ("paper_experiments", "bench"):
            found.append(f"{_where(path, line)}: {own} imports {module}, which sits above the library")
            continue
        if top != "dropnet_tf" or module not in MODULES:
            continue
        mine, theirs = _unit(own), _unit(module)
        if mine == theirs:
            continue
        if _rank(theirs, order) > _rank(mine, order):
            found.append(f"{_where(path, line)}: {own} ({mine}) imports {module} ({theirs}), a layer above")
        elif _rank(theirs, order) == _rank(mine, order):
            found.append(f"{_where(path, line)}: {own} ({mine}) imports {module} ({theirs}), sideways in its layer")
    return found


def test_the_layer_order_names_every_package():
    order = layer_order()
    units = [unit for layer in order for unit in layer]
    assert len(units) == len(set(units))
    on_disk = {_unit(name) for name in MODULES} - {"dropnet_tf"}
    assert set(units) == on_disk


def test_no_import_goes_up_the_layer_order_or_sideways():
    order = layer_order()
    found = [f for path in _library_files() for f in _layer_findings(path, path.read_text(encoding="utf-8"), order)]
    assert not found, "Imports against the layer order " + " < ".join(map(", ".join, order)) + ":\n" + "\n".join(found)


def test_the_kit_imports_no_paper_script():
    """paper_experiments/kit is what the scripts share: it imports none of them (nor bench)."""
    found = []
    for path in sorted((ROOT / "paper_experiments" / "kit").rglob("*.py")):
        for line, module in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if module.split(".")[0] == "bench" or (
                module.startswith("paper_experiments.") and not module.startswith("paper_experiments.kit")
            ):
                found.append(f"{_where(path, line)}: imports {module}")
    assert not found, "\n".join(found)


def test_the_layer_check_catches_what_it_should():
    order = layer_order()
    probe = ROOT / "dropnet_tf" / "core" / "probe.py"  # never written; only its source is parsed
    source = (
        "from dropnet_tf.core.masking import add_masks\n"              # same package
        "from dropnet_tf.engines.config import TrainingConfig\n"       # up: core < engines
        "def f():\n"
        "    from dropnet_tf.dropnet import metrics\n"                 # up, inside a function
        "import paper_experiments.kit.cli\n"                           # the scripts
    )
    text = "\n".join(_layer_findings(probe, source, order))
    assert "probe.py:1" not in text
    assert "probe.py:2: dropnet_tf.core.probe (core) imports dropnet_tf.engines.config (engines), a layer above" in text
    assert "probe.py:4: dropnet_tf.core.probe (core) imports dropnet_tf.dropnet.metrics (dropnet), a layer above" in text
    assert "probe.py:5" in text and "above the library" in text

    sideways = ROOT / "dropnet_tf" / "layerprune" / "probe.py"
    text = "\n".join(_layer_findings(sideways, "from dropnet_tf.foresight.scorers.obd import OBDScorer\n"
                                               "from dropnet_tf.compaction import compact\n", order))
    assert "probe.py:1: dropnet_tf.layerprune.probe (layerprune) imports dropnet_tf.foresight.scorers.obd (foresight), sideways" in text
    assert "probe.py:2" not in text  # compaction is below the method packages


# --------------------------------------------------------------------------------------------
# No cycles
# --------------------------------------------------------------------------------------------


def import_graph() -> dict[str, set[str]]:
    """Module → the library modules it imports (module level and inside functions)."""
    graph = {}
    for name, path in MODULES.items():
        graph[name] = {
            module for _, module in _imports(ast.parse(path.read_text(encoding="utf-8")))
            if module in MODULES and module != name
        }
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    cycles = _cycles(import_graph())
    assert not cycles, "Modules that import each other (directly or around a loop):\n" + "\n".join(map(" ↔ ".join, cycles))


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# --------------------------------------------------------------------------------------------
# Private names
# --------------------------------------------------------------------------------------------


def _package_of_module(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "dropnet_tf":
        return None
    if len(parts) > 1 and f"dropnet_tf.{parts[1]}" in PACKAGES:
        return "dropnet_tf." + parts[1]
    return "dropnet_tf"


def _package_of_file(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).parts
    if rel[0] != "dropnet_tf":
        return "scripts"  # paper_experiments/, bench/: outside every package
    if len(rel) > 2:
        return "dropnet_tf." + rel[1]
    return "dropnet_tf"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _python_files():
    for top in CHECKED:
        yield from sorted((ROOT / top).rglob("*.py"))


def _violations(path: pathlib.Path, source: str | None = None) -> list[str]:
    if source is None:
        source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    own = _package_of_file(path)
    where = lambda node: f"{path.relative_to(ROOT)}:{node.lineno}"  # noqa: E731
    found: list[str] = []
    bound: dict[str, str] = {}  # local name → dropnet_tf module it is bound to

    def check_module(module: str, node) -> bool:
        """False (and a finding) when ``module`` is private to another package."""
        package = _package_of_module(module)
        if package is None:
            return True
        if package != own and any(_private(part) for part in module.split(".")):
            found.append(f"{where(node)}: imports the private module {module!r} from {package}")
            return False
        return True

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not check_module(node.module, node):
                continue
            package = _package_of_module(node.module)
            if package is None:
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                target_package = _package_of_module(submodule) if node.module != "dropnet_tf" or submodule in PACKAGES else package
                if _private(alias.name) and (package != own or target_package != own):
                    found.append(f"{where(node)}: imports the private name {alias.name!r} from {node.module} ({package})")
                bound[alias.asname or alias.name] = submodule
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if check_module(alias.name, node) and alias.name.startswith("dropnet_tf"):
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "dropnet_tf"

    # module._name: attribute access on a name bound to a dropnet_tf module of another package.
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        chain, value = [node.attr], node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if not isinstance(value, ast.Name) or value.id not in bound:
            continue
        dotted = ".".join([bound[value.id]] + list(reversed(chain[1:])))
        package = _package_of_module(dotted)
        if package is not None and package != own:
            found.append(f"{where(node)}: uses the private name {dotted}.{node.attr} of {package}")
    return found


def test_no_private_names_across_packages():
    found = [finding for path in _python_files() for finding in _violations(path)]
    assert not found, "Private names used across packages:\n" + "\n".join(found)


def test_the_private_name_check_catches_what_it_should():
    """Each kind of violation is reported with file:line."""
    probe = ROOT / "dropnet_tf" / "layerprune" / "probe.py"  # never written; only its source is parsed
    source = (
        "from dropnet_tf.core.masking import _unique_name\n"             # private name, other package
        "from dropnet_tf.core import backend\n"
        "import dropnet_tf.core.graph as g\n"
        "x = g._is_private_helper\n"                                     # module._name, other package
        "from dropnet_tf.core._hidden import keras\n"                    # private module
        "from dropnet_tf.layerprune.blocks import _BLOCK_ACTIVATIONS\n"  # same package: allowed
        "import dropnet_tf\n"
        "y = dropnet_tf.core.io._private\n"                              # dotted chain, other package
    )
    text = "\n".join(_violations(probe, source))
    assert "probe.py:1" in text and "_unique_name" in text
    assert "probe.py:2" not in text and "probe.py:3" not in text
    assert "probe.py:4" in text and "_is_private_helper" in text
    assert "probe.py:5" in text and "private module" in text
    assert "probe.py:6" not in text
    assert "probe.py:8" in text and "dropnet_tf.core.io._private" in text


# --------------------------------------------------------------------------------------------
# The README's Layout
# --------------------------------------------------------------------------------------------


def readme_layout() -> dict[str, list[str]]:
    """``{package folder: [its modules]}`` from the table of the README's Layout section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    layout = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) < 3 or not cells[0].startswith("`dropnet_tf"):
            continue
        folder = cells[0].strip("`").rstrip("/")
        layout[folder] = re.findall(r"`(\w+)`", cells[-1])
    return layout


def test_the_readme_layout_matches_the_tree():
    layout = readme_layout()
    listed = {folder.replace("/", ".") for folder in layout}
    assert listed == PACKAGES, (
        f"packages on disk but not in the README: {sorted(PACKAGES - listed)}; "
        f"in the README but not on disk: {sorted(listed - PACKAGES)}"
    )
    for folder, modules in layout.items():
        package = folder.replace("/", ".")
        on_disk = {name.rpartition(".")[2] for name in MODULES  # subpackages have rows of their own
                   if name.rpartition(".")[0] == package and name not in PACKAGES}
        assert set(modules) == on_disk, (
            f"{folder}/: on disk but not listed {sorted(on_disk - set(modules))}; "
            f"listed but not on disk {sorted(set(modules) - on_disk)}"
        )
        assert len(modules) == len(set(modules)), f"{folder}/ lists a module twice"
    # the rows run from the bottom layer up
    order = layer_order()
    ranks = [_rank(_unit(folder.replace("/", ".")), order) for folder in layout]
    assert ranks == sorted(ranks), f"the README's rows are not in the layer order {order}: {list(layout)}"


def test_the_other_descriptions_point_to_the_readme():
    for package in ("dropnet_tf", "dropnet_tf.core", "dropnet_tf.dropnet"):
        docstring = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8")))
        assert "README" in docstring and "Layout" in docstring, package


# --------------------------------------------------------------------------------------------
# Imports at run time
# --------------------------------------------------------------------------------------------


def _env():
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def test_import_dropnet_tf_does_not_import_plotting_and_has_no_import_hook():
    """Plotting (matplotlib) is imported on first use of ``dropnet_tf.plotting`` only, and the
    package puts no finder on ``sys.meta_path`` (former paths do not import).

    Keras 3 itself imports matplotlib when it is installed (keras.src.visualization), so
    matplotlib may be loaded anyway; then only the library's own part is checked.
    """
    code = (
        "import json, sys, importlib\n"
        "import keras\n"
        "by_keras = 'matplotlib' in sys.modules\n"
        "finders = len(sys.meta_path)\n"
        "import dropnet_tf\n"
        "state = {'by_keras': by_keras, 'matplotlib': 'matplotlib' in sys.modules,\n"
        "         'plotting': 'dropnet_tf.plotting' in sys.modules, 'finders': len(sys.meta_path) - finders}\n"
        "try:\n"
        "    importlib.import_module('dropnet_tf.iterative')\n"
        "    state['former'] = True\n"
        "except ModuleNotFoundError:\n"
        "    state['former'] = False\n"
        "state['lazy'] = dropnet_tf.plotting.__name__\n"
        "print(json.dumps(state))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env=_env())
    assert result.returncode == 0, result.stderr[-2000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert not state["plotting"]
    if not state["by_keras"]:
        assert not state["matplotlib"]
    assert state["finders"] == 0 and state["former"] is False
    assert state["lazy"] == "dropnet_tf.plotting"
