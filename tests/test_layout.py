"""Architecture rules that the file layout promises."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


# The packages from the bottom up: a module may import its own layer and those below it, never
# one above. `federation` is what every member shares, `node` one city's server over it, `cli`
# every command over both.
LAYERS = (
    ("federation.errors", "federation.config_files"),
    ("federation.query",),
    ("federation.trust",),
    ("federation.privacy",),
    ("federation.serving",),
    ("federation.synthetic",),
    ("federation.coordination",),
    ("federation.linkage",),
    ("federation.services",),
    ("node",),
    ("cli",),
)
FEDERATION_TOP_LEVEL = {"__init__.py", "errors.py", "config_files.py"}


def layer_of(module: str) -> int | None:
    for number, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return number
    return None


def own_modules() -> dict[str, Path]:
    modules = {}
    for package in ("federation", "node", "cli"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def test_every_module_belongs_to_a_layer():
    assert [m for m in own_modules() if m != "federation" and layer_of(m) is None] == []
    assert {p.name for p in (ROOT / "federation").iterdir() if p.suffix == ".py"} == \
        FEDERATION_TOP_LEVEL


def test_no_module_imports_a_layer_above_its_own():
    upward = {}
    for module, path in own_modules().items():
        own = layer_of(module)
        if own is None:
            continue
        above = sorted(m for m in imported_modules(path)
                       if (layer_of(m) or 0) > own)
        if above:
            upward[module] = above
    assert upward == {}


def test_federation_never_imports_node_or_cli():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path)
                                            if m.split(".")[0] in {"node", "cli"})
        for path in (ROOT / "federation").rglob("*.py")
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def test_every_package_says_what_it_owns():
    for package in [ROOT / "federation", ROOT / "node", ROOT / "cli",
                    *(p for p in (ROOT / "federation").iterdir() if (p / "__init__.py").exists())]:
        docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert docstring, f"{package.relative_to(ROOT)}/__init__.py has no docstring"


def test_committed_stubs_match_the_protos(tmp_path):
    protos = sorted(str(p.relative_to(ROOT / "proto"))
                    for p in (ROOT / "proto/cityfed/v1").glob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"),
                    f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
                    f"--grpc_python_out={tmp_path}", *protos], check=True)
    generated = sorted((tmp_path / "cityfed/v1").iterdir())
    assert generated
    for path in generated:
        committed = ROOT / "proto/cityfed/v1" / path.name
        assert committed.read_bytes() == path.read_bytes(), f"{path.name} is stale: make proto"


def test_every_rpc_documents_its_status_codes():
    for proto in (ROOT / "proto/cityfed/v1").glob("*.proto"):
        lines = proto.read_text().splitlines()
        for index, line in enumerate(lines):
            if line.strip().startswith("rpc "):
                comment = []
                for above in reversed(lines[:index]):
                    if not above.strip().startswith("//"):
                        break
                    comment.append(above)
                assert "Returns" in " ".join(comment), f"{proto.name}: {line.strip()}"


def test_the_protos_pass_buf_lint_with_every_element_commented():
    """STANDARD and COMMENTS, with the buf that `make setup` installs (clients/node)."""
    buf = ROOT / "clients/node/node_modules/.bin/buf"
    assert buf.exists(), "make setup installs buf into clients/node"
    linted = subprocess.run([str(buf), "lint"], cwd=ROOT / "proto", capture_output=True,
                            text=True, timeout=120)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "COMMENTS" in (ROOT / "proto/buf.yaml").read_text()
