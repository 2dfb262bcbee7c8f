"""The layering rules of the design (folders are layers, imports point down), checked on the source.

Every module under ``avperceive/`` is parsed with :mod:`ast`; every ``import`` / ``from ... import``
(at module level or inside a function: a lazy import crosses a layer all the same) and every
``importlib.import_module("avperceive...")`` with a literal name is resolved to an absolute module
name. The rules (DESIGN.md, "Layers"):

* ``errors`` and ``modality`` are the foundation; ``io`` imports only them; ``signal`` only them and ``io``;
* ``nn`` never imports ``backbones``, ``models``, ``hub.converters``, ``analysis``, ``train``,
  ``predict``/``inference`` or ``cli``;
* ``backbones`` never imports ``models``, ``hub.converters`` or anything above models;
* ``hub`` never imports ``models`` or anything above it;
* ``models`` never imports ``train``, ``analysis``, ``predict``/``inference`` or ``cli``;
* nothing imports ``cli`` except ``avperceive/__main__.py`` (and ``cli`` itself).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "avperceive"

FOUNDATION = {"avperceive.errors", "avperceive.modality"}
ABOVE_MODELS = ("avperceive.train", "avperceive.analysis", "avperceive.predict", "avperceive.inference",
                "avperceive.cli")
# layer -> (allowed-only prefixes or None, forbidden prefixes)
RULES: dict[str, tuple[tuple[str, ...] | None, tuple[str, ...]]] = {
    "avperceive.errors": (("avperceive.errors",), ()),
    "avperceive.modality": (("avperceive.errors", "avperceive.modality"), ()),
    "avperceive.io": ((*FOUNDATION, "avperceive.io"), ()),
    "avperceive.signal": ((*FOUNDATION, "avperceive.io", "avperceive.signal"), ()),
    "avperceive.nn": (None, ("avperceive.backbones", "avperceive.models", "avperceive.hub.converters",
                             "avperceive.data", *ABOVE_MODELS)),
    "avperceive.backbones": (None, ("avperceive.models", "avperceive.hub.converters", "avperceive.data",
                                    *ABOVE_MODELS)),
    "avperceive.hub": (None, ("avperceive.models", "avperceive.data", *ABOVE_MODELS)),
    "avperceive.models": (None, ABOVE_MODELS),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of every avperceive module that ``source`` (the text of ``module``) imports."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module:
                found.add(target)
            # ``from . import x`` / ``from ..hub import converters``: the names may be sub-modules.
            found |= {f"{target}.{alias.name}" for alias in node.names}
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return {name for name in found if name == "avperceive" or name.startswith("avperceive.")}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(module: str, imports: set[str]) -> list[str]:
    """The rules ``module`` breaks by importing ``imports`` (empty when it keeps them all)."""
    out = []
    for target in sorted(imports):
        own = _under(module, "avperceive.cli") or module == "avperceive.__main__"
        if _under(target, "avperceive.cli") and not own:
            out.append(f"{module} imports {target}: only avperceive.__main__ may import the command line")
    for layer, (allowed, forbidden) in RULES.items():
        if not _under(module, layer):
            continue
        for target in sorted(imports):
            if allowed is not None and not any(_under(target, a) for a in allowed):
                out.append(f"{module} imports {target}: {layer} may import only {', '.join(allowed)}")
            elif any(_under(target, f) for f in forbidden):
                out.append(f"{module} imports {target}: {layer} must not import it")
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_module_keeps_the_layering_rules(path):
    module = module_name(path)
    imports = imported_modules(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
    assert violations(module, imports) == []


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "__main__.py"], ids=lambda p: module_name(p))
def test_every_module_imports(path):
    assert importlib.import_module(module_name(path)).__name__ == module_name(path)


def test_the_checker_flags_violations():
    """Known-bad sources (a lazy import of models in hub, io reaching up to nn, ...) are all caught."""
    cases = {
        ("avperceive.hub.convert", False): "def f():\n    from ..models import create_model\n",
        ("avperceive.io.load", False): "from ..nn.heads import ave_decision\n",
        ("avperceive.signal", True): "import avperceive.backbones.htsat\n",
        ("avperceive.nn.adapters", False): "from ..hub import converters\n",
        ("avperceive.backbones.htsat", False): "import importlib\nimportlib.import_module('avperceive.models')\n",
        ("avperceive.models.dgsct", False): "from ..train.finetune import finetune\n",
        ("avperceive.analysis.describe", False): "from ..cli import main\n",
    }
    for (module, is_package), source in cases.items():
        assert violations(module, imported_modules(source, module, is_package)), module
    # ... and imports that point down are not.
    fine = {
        ("avperceive.hub.convert", False): "from ..backbones.swinv2 import SwinV2\nfrom ..errors import ConfigError\n",
        ("avperceive.nn.ensemble", False): "from ..modality import STREAMS\nfrom .attention import attend\n",
        ("avperceive.__main__", False): "from .cli import main\n",
    }
    for (module, is_package), source in fine.items():
        assert violations(module, imported_modules(source, module, is_package)) == [], module


@pytest.mark.parametrize("package", ["avperceive.nn", "avperceive.models"])
def test_package_exports_what_it_imports(package):
    """``__all__`` lists exactly the names the package ``__init__`` imports from its modules."""
    path = PACKAGE / package.split(".")[1] / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                and node.level == 1 for alias in node.names}
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(imported)
    assert len(set(module.__all__)) == len(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)
    assert "noqa" not in path.read_text(encoding="utf-8")
