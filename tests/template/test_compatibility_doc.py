"""docs/dify-compatibility.md names, for every Dify call the relay makes, Dify's source and the tests
that hold the relay to it; docs/security.md names the test behind each claim. Each named test exists, and
each call the Dify client makes has a row."""

import ast
import re

import pytest

from tests.support import ROOT

DOC = (ROOT / "docs" / "dify-compatibility.md").read_text()
# `integration/test_chat.py::test_x`, `sim::test_y`, and `::test_z` continuing the file named just before.
REFERENCE = re.compile(r"`(?:(sim|[\w/]+\.py))?::(\w+)(?:\[[^\]]*\])?`")


def named_tests(doc: str) -> list[tuple[str, str]]:
    named, current = [], None
    for match in REFERENCE.finditer((ROOT / "docs" / doc).read_text()):
        where, test = match.groups()
        if where:
            current = "simulator/test_dify_simulator.py" if where == "sim" else where.removeprefix("tests/")
        assert current, f"{test} is named before any test file"
        named.append((doc, current, test))
    return named


def defined_functions(path: str) -> set[str]:
    tree = ast.parse((ROOT / "tests" / path).read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


NAMED = named_tests("dify-compatibility.md") + named_tests("security.md")


def test_the_documents_name_tests():
    assert sum(doc == "dify-compatibility.md" for doc, _, _ in NAMED) > 60
    assert sum(doc == "security.md" for doc, _, _ in NAMED) > 25


@pytest.mark.parametrize(("doc", "path", "test"), NAMED, ids=[f"{d}:{p}::{t}" for d, p, t in NAMED])
def test_every_named_test_exists(doc, path, test):
    assert test in defined_functions(path), f"docs/{doc} names {path}::{test}, which does not exist"


def dify_paths() -> set[str]:
    """Every Service API path the relay's Dify package writes, up to its first placeholder or query."""
    package = ROOT / "layers" / "relay" / "relay" / "dify"
    source = "\n".join(module.read_text() for module in sorted(package.glob("*.py")))
    paths = {path.rstrip("/") for path in re.findall(r'f?"(/[a-z][a-z/-]*)', source)}
    paths |= {f"/{{task_id}}{tail}" for tail in re.findall(r"\{task_id\}(/[a-z]+)", source)}
    return paths - {"/v1"}


def test_every_dify_route_the_client_calls_has_a_row():
    paths = dify_paths()
    assert {"/chat-messages", "/workflows/run", "/workflows/tasks", "/{task_id}/stop", "/info"} <= paths
    missing = [path for path in sorted(paths) if path not in DOC]
    assert not missing, f"docs/dify-compatibility.md has no row for {missing}"
