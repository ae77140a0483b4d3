"""What `sam build` ships: the Makefile's build rules (BuildMethod: makefile) run as SAM runs them, in a copy
of each resource's directory with ARTIFACTS_DIR set, and the artefacts checked: every module with python3.13
byte-code that Lambda uses as it is (read-only code, any file times), nothing else compiled, no tests, caches
or build leftovers."""

import os
import shutil
import subprocess

import pytest

from bench.lambda_layout import SAM_PYENV, sam_built
from tests.support import ROOT, function, resource

UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source not checked
pytestmark = pytest.mark.xdist_group("build")


def python313() -> bool:
    env = os.environ | SAM_PYENV
    python = shutil.which("python3.13", path=env.get("PATH"))
    return (
        python is not None
        and subprocess.run([python, "-c", ""], env=env, capture_output=True).returncode == 0
    )


def built(name: str, code: str, tmp_path):
    assert resource(name)["Metadata"]["BuildMethod"] == "makefile"
    assert resource(name)["Metadata"]["ContextPath"] == "."
    try:
        return sam_built(name, ROOT / code, tmp_path / "artifacts")
    except subprocess.CalledProcessError as error:
        raise AssertionError(error.stdout + error.stderr) from None


def check_compiled(artifacts) -> list[str]:
    sources = sorted(p.relative_to(artifacts) for p in artifacts.rglob("*.py"))
    assert sources
    for source in sources:
        compiled = artifacts / source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        assert compiled.is_file(), source
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == UNCHECKED_HASH, (source, flags)
    stray = [p for p in artifacts.rglob("*.pyc") if not p.name.endswith(".cpython-313.pyc")]
    assert not stray, stray
    names = {p.name for p in artifacts.rglob("*")}
    assert not names & {"tests", "test", ".lock", "bin", ".pytest_cache"}, names
    return [str(s) for s in sources]


# As `make test` skips `sam build` without python3.13 (ci.yml builds with it).
needs_313 = pytest.mark.skipif(not python313(), reason="no python3.13 on PATH")


@needs_313
@pytest.mark.parametrize("name", ["RelayFunction", "StreamFunction"])
def test_each_function_ships_its_code_compiled_for_python_313(name, tmp_path):
    code = function(name)["CodeUri"]
    artifacts = built(name, code, tmp_path)
    sources = check_compiled(artifacts)
    assert sorted(sources) == sorted(p.name for p in (ROOT / code).glob("*.py"))
    if name == "StreamFunction":
        assert os.access(artifacts / "bootstrap", os.X_OK)  # the wrapper script stays executable


@needs_313
def test_the_relay_layer_ships_the_package_compiled_under_python(tmp_path):
    artifacts = built("RelayCodeLayer", resource("RelayCodeLayer")["Properties"]["ContentUri"], tmp_path)
    sources = check_compiled(artifacts)
    assert "python/relay/turns.py" in sources and all(s.startswith("python/relay/") for s in sources)


@needs_313
def test_the_dependencies_layer_ships_the_locked_packages_compiled(tmp_path):
    artifacts = built(
        "DependenciesLayer", resource("DependenciesLayer")["Properties"]["ContentUri"], tmp_path
    )
    check_compiled(artifacts)
    installed = {p.name.split("-")[0].lower() for p in (artifacts / "python").glob("*.dist-info")}
    assert installed == {"aws_lambda_powertools", "jmespath", "typing_extensions", "urllib3"}
