"""The package architecture: a shared core below sibling method packages (issue 13).

* every former module path (dropnet_tf.iterative, dropnet_tf.foresight.models ...) still
  imports, as the new module object itself;
* ``import dropnet_tf`` does not import plotting (matplotlib);
* no module imports a private name (or a private module) from another package, and the
  library and the scripts use the new paths, not the aliases.
"""

from __future__ import annotations

import ast
import importlib
import json
import pathlib
import subprocess
import sys

import pytest

from dropnet_tf.core.aliases import ALIASES

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: The packages of the architecture; anything else under dropnet_tf/ belongs to the root.
PACKAGES = ("core", "data", "models", "dropnet", "foresight", "layerprune", "compaction")

#: Code that must respect package boundaries (tests may use private names).
CHECKED = ("dropnet_tf", "paper_experiments", "bench")


# --------------------------------------------------------------------------------------------
# Former paths
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("old", sorted(ALIASES))
def test_every_former_path_imports_as_the_new_module(old):
    new = ALIASES[old]
    module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert sys.modules[old] is sys.modules[new]
    assert module.__name__ == new and module.__spec__.name == new  # the alias did not rename it
    parent, _, child = old.rpartition(".")
    assert getattr(importlib.import_module(parent), child) is module  # attribute access too


def test_from_imports_through_former_paths():
    from dropnet_tf.foresight.models import lenet_300_100
    from dropnet_tf.iterative import TrainingConfig
    from dropnet_tf.layerprune.models import vgg19_bn
    from dropnet_tf.models import model_a

    import dropnet_tf

    assert TrainingConfig is dropnet_tf.TrainingConfig
    assert lenet_300_100 is dropnet_tf.models.lenet_300_100
    assert vgg19_bn is dropnet_tf.layerprune.vgg19_bn
    assert model_a is dropnet_tf.models.dropnet.model_a


def test_python_dash_m_runs_a_former_path():
    """``python -m dropnet_tf.foresight.tfmot_baseline --help`` (the documented command) still runs."""
    result = subprocess.run(
        [sys.executable, "-m", "dropnet_tf.foresight.tfmot_baseline", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**_env(), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "gradual magnitude pruning" in result.stdout


def _env():
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def test_import_dropnet_tf_does_not_import_plotting():
    """Plotting (matplotlib) is imported on first use of ``dropnet_tf.plotting`` only.

    Keras 3 itself imports matplotlib when it is installed (keras.src.visualization), so
    matplotlib may be loaded anyway; then only the library's own part is checked.
    """
    code = (
        "import json, sys\n"
        "import keras\n"
        "by_keras = 'matplotlib' in sys.modules\n"
        "import dropnet_tf\n"
        "print(json.dumps({'by_keras': by_keras, 'matplotlib': 'matplotlib' in sys.modules,\n"
        "                  'plotting': 'dropnet_tf.plotting' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**_env(), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert not state["plotting"]
    if not state["by_keras"]:
        assert not state["matplotlib"]


# --------------------------------------------------------------------------------------------
# Package boundaries
# --------------------------------------------------------------------------------------------


def _resolve(module: str) -> str:
    """Former paths → their new module."""
    for old, new in ALIASES.items():
        if module == old or module.startswith(old + "."):
            return new + module[len(old):]
    return module


def _package_of_module(module: str) -> str | None:
    parts = _resolve(module).split(".")
    if parts[0] != "dropnet_tf":
        return None
    if len(parts) > 1 and parts[1] in PACKAGES:
        return "dropnet_tf." + parts[1]
    return "dropnet_tf"


def _package_of_file(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).parts
    if rel[0] != "dropnet_tf":
        return "scripts"  # paper_experiments/, bench/: outside every package
    if len(rel) > 2 and rel[1] in PACKAGES:
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
        """False (and a finding) when ``module`` is private to another package or a former path."""
        package = _package_of_module(module)
        if package is None:
            return True
        if _resolve(module) != module:
            found.append(f"{where(node)}: imports the former path {module!r}; use {_resolve(module)!r}")
        if package != own and any(_private(part) for part in _resolve(module).split(".")):
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
                target_package = _package_of_module(submodule) if alias.name in PACKAGES or node.module != "dropnet_tf" else package
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


def test_the_checker_catches_what_it_should():
    """The boundary check itself: each kind of violation is reported with file:line."""
    probe = ROOT / "dropnet_tf" / "layerprune" / "probe.py"  # never written; only its source is parsed
    source = (
        "from dropnet_tf.core.masking import _unique_name\n"             # private name, other package
        "from dropnet_tf.core import backend\n"
        "import dropnet_tf.core.graph as g\n"
        "x = g._is_private_helper\n"                                     # module._name, other package
        "from dropnet_tf._keras import keras\n"                          # former (private) path
        "from dropnet_tf.layerprune.blocks import _BLOCK_ACTIVATIONS\n"  # same package: allowed
        "import dropnet_tf\n"
        "y = dropnet_tf.core.io._private\n"                              # dotted chain, other package
    )
    text = "\n".join(_violations(probe, source))
    assert "probe.py:1" in text and "_unique_name" in text
    assert "probe.py:2" not in text and "probe.py:3" not in text
    assert "probe.py:4" in text and "_is_private_helper" in text
    assert "probe.py:5" in text and "former path" in text
    assert "probe.py:6" not in text
    assert "probe.py:8" in text and "dropnet_tf.core.io._private" in text


def test_packages_are_directories_and_old_modules_are_gone():
    names = {p.name for p in (ROOT / "dropnet_tf").iterdir()}
    for package in PACKAGES:
        assert (ROOT / "dropnet_tf" / package / "__init__.py").is_file()
    for old in ALIASES:
        parts = old.split(".")
        assert not (ROOT.joinpath(*parts).with_suffix(".py")).exists(), f"{old} is still a file"
    assert {"__init__.py", "plotting.py"} <= names
