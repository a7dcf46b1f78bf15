"""Runs the shared CLI contract checker against the installed `apactors`, when it is available.

The contract lives beside the repository (../shared/contract/check_cli.py in CI); the package itself
never reads it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "contract" / "check_cli.py"


@pytest.mark.timeout(600)
@pytest.mark.skipif(not CHECKER.exists(), reason="the shared contract checker is not beside this clone")
@pytest.mark.skipif(shutil.which("apactors") is None, reason="apactors is not installed on PATH")
def test_cli_contract():
    r = subprocess.run([sys.executable, str(CHECKER)], capture_output=True, text=True, timeout=590)
    failed = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert r.returncode == 0 and not failed, "\n".join(failed) or r.stdout[-2000:]
