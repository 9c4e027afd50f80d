"""The three-environment rehearsal (tests/three_environments.py) as a test: on the PostgreSQL server of
BILLING_TEST_POSTGRES_URL (CI sets it), skipped without one."""

from __future__ import annotations

import os

import pytest

import three_environments

SERVER = os.environ.get("BILLING_TEST_POSTGRES_URL")


@pytest.mark.skipif(not SERVER, reason="BILLING_TEST_POSTGRES_URL is not set: the rehearsal needs PostgreSQL")
def test_three_environments_side_by_side_share_nothing(tmp_path):
    assert three_environments.rehearse(SERVER, tmp_path) == []
