"""Every import in src/taskshare points down the layer map that the README's Architecture section
states (one map, read from there, so the prose and the rule cannot drift apart).

A module may import modules of its own layer or of any layer below. Module-level imports and imports
inside functions count alike: a lazy import is still a dependency, it only moves the failure to run
time. A package in the map stands for every module inside it; the most specific entry wins.
"""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "taskshare"
README = ROOT / "README.md"

# Upward imports that are known and owned elsewhere: (importer, imported) -> why it is still here.
ALLOWED: dict[tuple[str, str], str] = {}


def layer_map(text: str) -> list[tuple[str, list[str]]]:
    """(layer, module names) from the README block under 'What may import what', highest first."""
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"What may import what.*?```text\n(.*?)```", section, flags=re.S)
    assert block, "README's Architecture section has no ```text block under 'What may import what'"
    layers = []
    for line in block.group(1).splitlines():
        if line.strip() and not line.startswith(" "):
            name, modules = line.split(maxsplit=1)
            layers.append((name, [m.strip() for m in modules.split(",")]))
        elif line.strip():                        # a continuation line adds modules to the layer above
            layers[-1][1].extend(m.strip() for m in line.split(",") if m.strip())
    return layers


def rank_of(layers: list[tuple[str, list[str]]]):
    """module -> (rank, layer); rank 0 is the top. The package's own __init__ ("taskshare") is matched
    exactly, every other entry as a prefix on dotted boundaries."""
    entries = {m: (i, name) for i, (name, modules) in enumerate(layers) for m in modules}

    def rank(module: str):
        if module == "taskshare":
            return entries.get("taskshare")
        parts = module.split(".")
        for n in range(len(parts), 1, -1):
            if ".".join(parts[:n]) in entries:
                return entries[".".join(parts[:n])]
        return None

    return rank


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, src: Path = SRC) -> list[tuple[str, int]]:
    """Every taskshare module `path` imports, anywhere in the file, with its line."""
    name = module_name(path, src)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:                # from . import x: x is a module of the package
                found += [(f"{target}.{a.name}", node.lineno) for a in node.names]
            else:
                found.append((target, node.lineno))
    return [(t, line) for t, line in found if t == "taskshare" or t.startswith("taskshare.")]


def covers(entry: str, module: str) -> bool:
    return module == entry or module.startswith(entry + ".")


def upward_imports(src: Path, layers: list[tuple[str, list[str]]], allowed=()) -> list[str]:
    """One line per import that points to a higher layer, naming both modules and both layers."""
    rank = rank_of(layers)
    upward = []
    for path in sorted(src.rglob("*.py")):
        importer = module_name(path, src)
        mine = rank(importer)
        for target, line in imports(path, src):
            theirs = rank(target)
            if mine is None or theirs is None or theirs[0] >= mine[0]:
                continue
            if any(importer == a and covers(b, target) for a, b in allowed):
                continue
            upward.append(f"{importer} (layer {mine[1]}, line {line}) imports {target} (layer {theirs[1]})")
    return upward


def test_every_module_has_a_layer():
    rank = rank_of(layer_map(README.read_text()))
    missing = [module_name(p) for p in sorted(SRC.rglob("*.py")) if rank(module_name(p)) is None]
    assert not missing, f"modules with no layer in README's Architecture map: {missing}"


def test_no_module_imports_a_layer_above_its_own():
    upward = upward_imports(SRC, layer_map(README.read_text()), ALLOWED)
    assert not upward, "imports pointing up the layer map:\n" + "\n".join(upward)


def test_every_allowed_exception_is_still_needed():
    """An allow-list entry whose import is gone would hide the next real one."""
    seen = {(module_name(p), t) for p in SRC.rglob("*.py") for t, _ in imports(p)}
    stale = [(a, b) for a, b in ALLOWED if not any(a == i and covers(b, t) for i, t in seen)]
    assert not stale, f"allow-list entries no longer needed: {stale}"


def test_the_map_has_the_command_at_the_top_and_the_ground_floor_at_the_bottom():
    layers = layer_map(README.read_text())
    assert layers[0][1] == ["taskshare", "taskshare.cli"]
    assert "taskshare.experiments" in layers[1][1]
    assert set(layers[-1][1]) == {"taskshare.errors", "taskshare.registry", "taskshare.io", "taskshare.config"}


def write(src: Path, module: str, code: str) -> None:
    path = src.parent.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code)


@pytest.mark.parametrize("module,code,expected", [
    ("taskshare.evaluate.report.page", "from ...train.loop import fit", "taskshare.train.loop"),
    ("taskshare.evaluate.report.page", "def f():\n    from ...experiment import run", "taskshare.experiment"),
    ("taskshare.evaluate.__init__", "from . import delta", "taskshare.evaluate.delta"),
    ("taskshare.models.zoo", "import taskshare.cli", "taskshare.cli"),
])
def test_imports_are_resolved_at_module_level_and_inside_functions(tmp_path, module, code, expected):
    """The parser the rule rests on: relative levels, lazy imports, `from . import x`, absolute names."""
    src = tmp_path / "taskshare"
    write(src, module, code)
    path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
    assert [t for t, _ in imports(path, src)] == [expected]


def test_a_lower_module_importing_a_higher_one_is_reported_with_both_names(tmp_path):
    src = tmp_path / "taskshare"
    write(src, "taskshare.cli", "from .errors import TaskshareError")              # down: fine
    write(src, "taskshare.errors", "def f():\n    from .cli import main")          # up, even lazily
    layers = [("cli", ["taskshare", "taskshare.cli"]), ("ground", ["taskshare.errors"])]
    assert upward_imports(src, layers) == ["taskshare.errors (layer ground, line 2) imports taskshare.cli (layer cli)"]
    assert upward_imports(src, layers, {("taskshare.errors", "taskshare.cli"): "known"}) == []
    assert rank_of(layers)("taskshare.nowhere") is None          # an unassigned module has no layer
