"""Schemathesis, driven by the relay's own OpenAPI document, against `make local` (the simulator behind it):
every operation, the links from an answer to the same session's history, follow-ups, feedback and erasure,
valid and invalid data (wrong types, huge, empty and unicode strings, control characters, missing and extra
fields, undeclared methods). A seeded, bounded run; `make fuzz` runs a longer one (FUZZ_EXAMPLES,
FUZZ_SEED)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DIFY_KEY
from tests.support import ROOT, local_server

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
SEED = int(os.environ.get("FUZZ_SEED", "20261202"))
SERVER = {
    "ALLOWED_ORIGINS": "*",
    "ALLOWED_INPUTS": "topic",
    # The budgets are exercised by the abuse scripts; here they would only turn examples into 429s.
    "RATE_LIMIT_SESSION_PER_MINUTE": "0",
    "RATE_LIMIT_SESSION_PER_DAY": "0",
    "RATE_LIMIT_IP_PER_MINUTE": "0",
    "RATE_LIMIT_IP_PER_DAY": "0",
    # The simulated app's key carries the canary that tests/fuzz/hooks.py looks for in every response.
    "SIMULATED_API_KEY": DIFY_KEY,
}


# The default app's document, and the one `make local`'s registered app (sales) serves for its own routes.
@pytest.mark.parametrize(
    "document", ["/v1/openapi.json", "/v1/apps/sales/openapi.json"], ids=["default", "sales"]
)
def test_schemathesis_finds_nothing(tmp_path: Path, document: str):
    with local_server(SERVER) as relay:
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "--config-file",
                str(ROOT / "tests" / "fuzz" / "schemathesis.toml"),
                "run",
                f"{relay}{document}",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                str(SEED),
                "--generation-database",
                "none",
                "--request-timeout",
                "10",
                "--no-color",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path),
            ],
            cwd=ROOT,
            env=os.environ | {"SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=max(600, EXAMPLES),
        )
    summary = run.stdout[run.stdout.find("SUMMARY") :] if "SUMMARY" in run.stdout else run.stdout[-3000:]
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
    assert "No issues found" in summary and "5 covered / 5 selected" in run.stdout, summary
    assert DIFY_KEY not in run.stdout
    print(summary)  # make fuzz shows the figures (-rA)
