"""Every `from taskshare... import name` in benchmarks/ (nested imports included) names a module and
an attribute that exist: a moved module must not leave a benchmark that fails only when someone runs it."""
import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def taskshare_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("taskshare"):
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("taskshare"):
                    yield node.lineno, alias.name, []


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_imports_resolve(path):
    for line, module, names in taskshare_imports(path):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            pytest.fail(f"{path.name}:{line} imports {module!r}, which does not exist ({exc})")
        for name in names:
            if not hasattr(mod, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ModuleNotFoundError:
                    pytest.fail(f"{path.name}:{line}: {module!r} has no {name!r}")
