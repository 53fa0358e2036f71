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


def test_federation_never_imports_node():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path)
                                            if m == "node" or m.startswith("node."))
        for path in (ROOT / "federation").rglob("*.py")
    }
    assert {p: m for p, m in offenders.items() if m} == {}


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
