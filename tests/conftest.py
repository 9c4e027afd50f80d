"""Shared fixtures: paths to the worked examples and the `billing` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from settings.environment import load as load_environment

# Under CI every property test draws the same examples on every run (no seed of the day, no example
# database carried from an earlier run): a red CI is a reproducible one. Locally they keep exploring.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
# The worked examples and the comparison tool of ../shared, copied: the suite needs nothing beside the repository.
EXAMPLES = ROOT / "tests" / "fixtures" / "examples"
COMPARE_TOOL = ROOT / "tests" / "fixtures" / "tools" / "compare_invoices.py"
# The test environment's legal entity: what `billing` and the portal hand the lifecycle, so a draft made by a
# test's direct call is the draft they would make (interfaces §4).
TEST_SELLER = dict(load_environment("test", {}).seller)


@pytest.fixture(scope="session")
def billing_exe() -> str:
    """The installed `billing` console script beside this interpreter."""
    candidate = Path(sys.executable).with_name("billing")
    return str(candidate) if candidate.exists() else shutil.which("billing")


@pytest.fixture
def run_billing(billing_exe, tmp_path):
    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [billing_exe, *map(str, args)], cwd=cwd or tmp_path, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )

    return run
