"""The import graph's back-arrows: imports that run against cutbench's layering.

Data flows one way (dataset -> features -> affinity -> method -> metrics -> store -> report), with the
package-dir mapping applied (``cutbench.methods`` is ``methods/``, ``cutbench.datasets`` is ``datasets/``,
``cutbench.reports`` is ``reports/``). The rules:

* the core (``cutbench/``, the command line ``cli.py`` aside) reaches the methods only through the registry,
  the contract and the package (``cutbench.methods``, ``.registry``, ``.base``), the datasets only through
  their package's API (``cutbench.datasets``), and never the reports;
* the datasets reach no method, report, runner or store; the methods no report, runner, store or study;
* the reports run no method and no runner, and read the datasets only through their package's API.

``python benchmarks/measure/layering.py [ROOT]`` prints every back-arrow of the checkout at ROOT (default:
this one); ``tests/test_layers.py`` requires there be none.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

METHOD_DOORS = {"cutbench.methods.registry", "cutbench.methods.base", "cutbench.methods"}
"""The core's only doors into the methods: the registry, the contract and the package."""


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth, lazily or not)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _package_imports(root: Path, folder: str, skip=()) -> set[tuple[str, str]]:
    return {(f"{folder}/{path.name}", module) for path in sorted((root / folder).glob("*.py"))
            if path.name not in skip for module in imports(path) if module.startswith("cutbench")}


def back_arrows(root: Path) -> set[tuple[str, str]]:
    """``(file, imported module)`` for every import against the rules of the module docstring."""
    core = _package_imports(root, "cutbench", skip=("cli.py",))
    back = {(where, module) for where, module in core
            if module.startswith("cutbench.reports")
            or (module.startswith("cutbench.methods") and module not in METHOD_DOORS)
            or (module.startswith("cutbench.datasets") and module != "cutbench.datasets")}
    back |= {(where, module) for where, module in _package_imports(root, "datasets")
             if module.startswith(("cutbench.methods", "cutbench.reports", "cutbench.runner", "cutbench.store"))}
    back |= {(where, module) for where, module in _package_imports(root, "methods")
             if module.startswith(("cutbench.reports", "cutbench.runner", "cutbench.store", "cutbench.study"))}
    back |= {(where, module) for where, module in _package_imports(root, "reports")
             if module.startswith(("cutbench.methods", "cutbench.runner"))
             or (module.startswith("cutbench.datasets") and module != "cutbench.datasets")}
    return back


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2]
    arrows = sorted(back_arrows(root))
    print(f"{len(arrows)} back-arrow(s) in {root}")
    for where, module in arrows:
        print(f"  {where} -> {module}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
