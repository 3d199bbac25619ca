"""Close codes: one enum, the README table agrees, no socket closes with a bare number."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from app.realtime.close_codes import CloseCode

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_table_lists_every_close_code_and_no_other() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\d{4})` \| `([A-Z_]+)` \|", readme, flags=re.MULTILINE)
    assert sorted((int(code), name) for code, name in rows) == sorted(
        (code.value, code.name) for code in CloseCode
    )


def test_no_socket_is_closed_with_a_bare_number() -> None:
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "close"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, int)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            elif isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name)
                and target.id.startswith("CLOSE_")
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, int)
                and not isinstance(node.value.value, bool)
                and 1000 <= node.value.value <= 4999
                for target in node.targets
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
