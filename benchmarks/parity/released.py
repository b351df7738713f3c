"""Run released research code from a checkout the user gives, unmodified, on a CPU-only machine.

The released codes call ``.cuda()`` throughout and some import packages that are not needed for what the
parity scripts compare; nothing of theirs is vendored or edited. :func:`cpu_only` makes ``.cuda()`` a no-op
when CUDA is absent, :func:`stub_module` stands in for an import that does not load, and :func:`run_script`
executes a released script as ``__main__`` and hands back its variables, each run with fresh imports of
the script's modules, as a new process would have.
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import types
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import torch


def cpu_only() -> None:
    """Make ``Tensor.cuda`` and ``Module.cuda`` no-ops on a machine without CUDA (the codes call them)."""
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
        torch.nn.Module.cuda = lambda self, *args, **kwargs: self


def stub_module(name: str, **attributes) -> None:
    """Register ``name`` as a stand-in module unless it imports (its attributes are never used)."""
    if name not in sys.modules and importlib.util.find_spec(name.split(".")[0]) is None:
        sys.modules[name] = types.SimpleNamespace(**attributes)


def load_module(path: Path, name: str):
    """The file ``path`` imported as module ``name``, its folder first on ``sys.path`` (for its own imports)."""
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _inside(folder: Path, script: Path, argv: list[str]):
    saved = os.getcwd(), sys.argv, list(sys.path), set(sys.modules)
    os.chdir(folder)
    sys.argv = argv
    sys.path.insert(0, str(script.parent))  # the script's own modules, as `python main.py` finds them
    try:
        yield
    finally:
        os.chdir(saved[0])
        sys.argv = saved[1]
        sys.path[:] = saved[2]
        # Forget the modules the run imported, so the next run starts as a fresh process would: released
        # modules keep state between calls (SpecNet2's update_YDY caches the last outputs on itself).
        for name in set(sys.modules) - saved[3]:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if Path(origin).resolve().is_relative_to(script.parent):
                del sys.modules[name]


def run_script(script: Path, argv: list[str], folder: Path) -> tuple[dict, BaseException | None, str]:
    """Execute ``script`` as ``__main__`` with ``argv`` in ``folder``: its globals, what ended it, its output.

    The exception is returned, not raised, so a caller can read the variables of a script whose last
    lines fail (e.g. an evaluation that assumes a dataset size); the caller says which failures it accepts.
    """
    namespace = {"__name__": "__main__", "__file__": str(script)}
    code = compile(Path(script).read_text(), str(script), "exec")
    printed = io.StringIO()
    with _inside(folder, Path(script).resolve(), [Path(script).name, *argv]), redirect_stdout(printed):
        try:
            exec(code, namespace)  # noqa: S102 - the released script, run as its authors run it
        except Exception as exc:  # noqa: BLE001 - handed to the caller, who decides
            return namespace, exc, printed.getvalue()
    return namespace, None, printed.getvalue()
