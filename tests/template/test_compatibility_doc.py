"""docs/dify-compatibility.md names, for every Dify call the relay makes, Dify's source and the tests
that hold the relay to it: each named test exists, and each call the Dify client makes has a row."""

import ast
import re

import pytest

from tests.support import ROOT

DOC = (ROOT / "docs" / "dify-compatibility.md").read_text()
# `integration/test_chat.py::test_x`, `sim::test_y`, and `::test_z` continuing the file named just before.
REFERENCE = re.compile(r"`(?:(sim|[\w/]+\.py))?::(test_\w+)(?:\[[^\]]*\])?`")


def named_tests() -> list[tuple[str, str]]:
    named, current = [], None
    for match in REFERENCE.finditer(DOC):
        where, test = match.groups()
        if where:
            current = "simulator/test_dify_simulator.py" if where == "sim" else where
        assert current, f"{test} is named before any test file"
        named.append((current, test))
    return named


def defined_tests(path: str) -> set[str]:
    tree = ast.parse((ROOT / "tests" / path).read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


NAMED = named_tests()


def test_the_table_names_tests():
    assert len(NAMED) > 60


@pytest.mark.parametrize(("path", "test"), NAMED, ids=[f"{p}::{t}" for p, t in NAMED])
def test_every_named_test_exists(path, test):
    assert test in defined_tests(path), (
        f"docs/dify-compatibility.md names {path}::{test}, which does not exist"
    )


def dify_paths() -> set[str]:
    """Every Service API path relay/dify.py writes, up to its first placeholder or query."""
    source = (ROOT / "functions" / "relay" / "relay" / "dify.py").read_text()
    paths = {path.rstrip("/") for path in re.findall(r'f?"(/[a-z][a-z/-]*)', source)}
    paths |= {f"/{{task_id}}{tail}" for tail in re.findall(r"\{task_id\}(/[a-z]+)", source)}
    return paths - {"/v1"}


def test_every_dify_route_the_client_calls_has_a_row():
    paths = dify_paths()
    assert {"/chat-messages", "/workflows/run", "/workflows/tasks", "/{task_id}/stop", "/info"} <= paths
    missing = [path for path in sorted(paths) if path not in DOC]
    assert not missing, f"docs/dify-compatibility.md has no row for {missing}"
