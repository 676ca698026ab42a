"""The layout's rules that import-linter cannot see (the contracts are in pyproject.toml, run by `make lint`)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vulhub", "tenants", "challenges", "scoring", "news", "classroom", "audit")


def _package_of(module: str) -> str:
    """The unit a contract is about: a top-level app, or one of vulhub's sub-apps (vulhub.ops)."""
    parts = module.split(".")
    if parts[0] == "vulhub" and len(parts) > 1 and parts[1] in ("lib", "ops", "seeding"):
        return ".".join(parts[:2])
    return parts[0]


def _module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def _imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        return [node.module or ""]
    base = module.split(".")[: -node.level]
    return [".".join([*base, node.module] if node.module else base)]


def hidden_imports(path: Path, root: Path = ROOT) -> list[str]:
    """Imports of another package made inside a function, outside an AppConfig.ready()."""
    module = _module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if path.name == "apps.py" and function.name == "ready":
            continue  # Django's place for imports that need the app registry
        for node in ast.walk(function):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported(node, module):
                if name.split(".")[0] in PACKAGES and _package_of(name) != _package_of(module):
                    found.append(f"{path.relative_to(root)}:{node.lineno} imports {name} inside {function.name}()")
    return found


def _sources() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "tests" not in path.parts and "migrations" not in path.parts
    ]


def test_no_package_is_imported_inside_a_function_to_hide_a_dependency():
    assert _sources(), "no source files found"
    problems = [problem for path in _sources() for problem in hidden_imports(path)]
    assert problems == []


def test_a_hidden_import_is_found(tmp_path):
    probe = tmp_path / "challenges" / "probe.py"
    probe.parent.mkdir()
    probe.write_text("def f():\n    from scoring.models import Submission\n    from .models import Project\n")
    assert hidden_imports(probe, tmp_path) == ["challenges/probe.py:2 imports scoring.models inside f()"]
