"""A Lambda-like layout on this machine, for the measurements that depend on what is importable and compiled:

    task-pyc/        the function code (functions/relay) and the relay package it shares with the streaming
                     function (layers/relay, /opt/python on Lambda; here beside the handler: importing it
                     costs the same), byte-compiled as `sam build` ships them (the Makefile's build rules:
                     unchecked-hash .pyc by python3.13), copied into a directory of the run's own: it is what
                     is being measured
    opt-pyc/python/  the layer: layers/deps/requirements.txt installed and byte-compiled the same way
    runtime/         the AWS SDK the python3.13 runtime provides (boto3, botocore and their dependencies, at
                     the versions requirements/dev.txt locks), byte-compiled like a runtime's own packages
    task/, opt/      the same function code and layer without byte-code (as they shipped before the build
                     compiled them), for comparison

searched in Lambda's order (task, layer, runtime) by an interpreter started with -S (no site-packages) and -B
(nothing written: /var/task and /opt are read-only on Lambda). The interpreter is python3.13 when this machine
has one, as Lambda runs; the layout is cached per interpreter and lock files.

What it cannot reproduce: arm64 (this machine is what `nproc`/cpuinfo say), Lambda's CPU share at a given
memory size, and the runtime's own bootstrap (awslambdaric) before the handler is imported.
"""

from __future__ import annotations

import glob
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import harness

ROOT = Path(harness.ROOT)
RELAY = Path(harness.RELAY)
LAYER_REQUIREMENTS = ROOT / "layers" / "deps" / "requirements.txt"
DEV_REQUIREMENTS = ROOT / "requirements" / "dev.txt"
BOOTSTRAP_REQUIREMENTS = ROOT / "requirements" / "bootstrap.txt"
# What the python3.13 runtime brings: boto3 and everything it needs, nothing else.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
LAMBDA_PYTHON = (3, 13)
# The installer the Makefile pins (requirements/bootstrap.txt) and exports as UV.
UV = ROOT / os.environ.get("UV", ".venv-uv/bin/uv")


@dataclass(frozen=True)
class Layout:
    """How to start a child process that imports the relay: interpreter, flags and BENCH_PATH."""

    name: str
    python: str  # the interpreter's real path
    version: str  # e.g. "3.13.0"
    flags: tuple[str, ...]
    bench_path: str  # function code, layer, runtime SDK (os.pathsep-separated), as shipped
    bench_path_source: str | None = None  # the same without byte-code

    def command(self, *args: str) -> list[str]:
        return [self.python, *self.flags, *args]


def find_python() -> str | None:
    """A python3.13 interpreter's real path: BENCH_LAMBDA_PYTHON, python3.13 on PATH, or under pyenv."""
    candidates = [os.environ.get("BENCH_LAMBDA_PYTHON"), shutil.which("python3.13")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13")))
    for candidate in filter(None, candidates):
        real = _probe(candidate)
        if real:
            return real
    return None


def _probe(python: str) -> str | None:
    try:
        out = subprocess.run(  # noqa: S603 - an interpreter found on this machine
            [python, "-c", "import sys; print(sys.version_info[:2] == (3, 13), sys.executable)"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[1] if out and out[0] == "True" else None


def locked_blocks(requirements: Path, names: tuple[str, ...]) -> str:
    """The entries (pin and hashes) of `names` in a hash-locked requirements file."""
    text = requirements.read_text()
    blocks = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:[ \t]+--hash=\S+(?: \\)?\n)+)", text, re.M)
    wanted = {name.lower() for name in names}
    found = {name.lower(): f"{name}=={version} \\\n{hashes}" for name, version, hashes in blocks}
    missing = wanted - found.keys()
    if missing:
        raise RuntimeError(f"{requirements} does not lock {sorted(missing)}")
    return "".join(found[name] for name in sorted(wanted))


def install_locked(python: str, target: Path, requirements: Path, *extra: str) -> None:
    """Hash-checked install into `target` for `python` by the Makefile's pinned uv, without dependencies
    beyond the lock file and without byte-code (uv compiles none unless asked)."""
    subprocess.run(  # noqa: S603 - the project's pinned installer, hash-checked requirements
        [
            str(UV),
            "pip",
            "install",
            "--quiet",
            "--require-hashes",
            "--no-deps",
            "--python",
            python,
            "--target",
            str(target),
            "-r",
            str(requirements),
            *extra,
        ],
        check=True,
        capture_output=True,
        text=True,
    )


# Where pyenv is used, python3.13 is on PATH with the Makefile's SAM_PYENV (as `make build` sets it).
SAM_PYENV = {"PYENV_VERSION": os.environ.get("PYENV_VERSION") or "3.11.7:3.13.0"}


def sam_built(name: str, source: Path, artifacts: Path) -> Path:
    """What `sam build` ships for template resource `name` (BuildMethod: makefile): the Makefile's
    build-<name> rule run as SAM runs it, in a copy of the resource's directory with ARTIFACTS_DIR set."""
    scratch = artifacts.with_name(artifacts.name + "-scratch")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(artifacts, ignore_errors=True)
    shutil.copytree(source, scratch, ignore=shutil.ignore_patterns("__pycache__"))
    artifacts.mkdir(parents=True)
    done = subprocess.run(  # noqa: S603 - the project's own Makefile
        [
            shutil.which("make") or "/usr/bin/make",
            "--no-print-directory",
            "-f",
            str(ROOT / "Makefile"),
            f"build-{name}",
        ],
        cwd=scratch,
        env=os.environ | SAM_PYENV | {"ARTIFACTS_DIR": str(artifacts)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, f"make build-{name}", done.stdout, done.stderr)
    return artifacts


def _compile(python: str, directory: Path) -> None:
    subprocess.run(  # noqa: S603
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(directory),
        ],
        check=True,
        capture_output=True,
    )


def _copy_code(destination: Path) -> None:
    shutil.rmtree(destination, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(RELAY, destination, ignore=ignore)
    shutil.copytree(Path(harness.SHARED) / "relay", destination / "relay", ignore=ignore)


def build(python: str, workdir: Path, log=print) -> Layout:
    """The layout for `python`: SDK and layer cached across runs, function code copied into `workdir`."""
    version = subprocess.run(  # noqa: S603
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    digest = hashlib.sha256()
    for part in (
        python,
        version,
        LAYER_REQUIREMENTS.read_text(),
        locked_blocks(DEV_REQUIREMENTS, RUNTIME_SDK),
        BOOTSTRAP_REQUIREMENTS.read_text(),  # the installer: what it compiles, and how, is part of the layout
    ):
        digest.update(part.encode())
    root = Path(tempfile.gettempdir()) / "dify-relay-bench" / digest.hexdigest()[:16]
    if not (root / ".complete").exists():
        log(f"building the Lambda-like layout for Python {version} in {root} (once; cached)")
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        runtime_requirements = root / "runtime-requirements.txt"
        runtime_requirements.write_text(locked_blocks(DEV_REQUIREMENTS, RUNTIME_SDK))
        install_locked(python, root / "runtime", runtime_requirements, "--compile-bytecode")
        install_locked(python, root / "opt" / "python", LAYER_REQUIREMENTS)
        shutil.copytree(root / "opt", root / "opt-pyc")
        _compile(python, root / "opt-pyc")
        (root / ".complete").write_text("")
    # The function code is copied afresh on every run: it is what is being measured.
    _copy_code(workdir / "task")
    _copy_code(workdir / "task-pyc")
    _compile(python, workdir / "task-pyc")

    def search_path(task: str, opt: str) -> str:
        return os.pathsep.join(str(p) for p in (workdir / task, root / opt / "python", root / "runtime"))

    return Layout(
        name="lambda-like",
        python=python,
        version=version,
        flags=("-S", "-B"),
        bench_path=search_path("task-pyc", "opt-pyc"),
        bench_path_source=search_path("task", "opt"),
    )


def venv_layout() -> Layout:
    """The project venv as it is: its site-packages (dev tools included) and byte-code caches."""
    return Layout(
        name="venv",
        python=sys.executable,
        version=platform.python_version(),
        flags=("-B",),
        bench_path=os.pathsep.join((str(RELAY), harness.SHARED)),
    )
