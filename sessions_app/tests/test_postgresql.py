"""The database paths of scale-out, run again on PostgreSQL, the deployment's database.

The suite runs on SQLite; these modules run a second time, in a pytest of their own, with
DATABASE_URL at a throwaway PostgreSQL cluster (transcriber_site.cluster.PostgresServer):
the state compare-and-set and the worker's claim (select_for_update), heartbeats and dead
workers, admission's load rows, session creation and its limit (the advisory lock),
transcripts and their versions. The limit under 25 concurrent creates through two web
processes runs on PostgreSQL in test_topology.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import psycopg
import pytest

from transcriber_site.cluster import PostgresServer
from transcriber_site.testing import BASE_DIR

pytestmark = pytest.mark.slow

MODULES = [
    "sessions_app/tests/test_session_states.py",
    "sessions_app/tests/test_orphans.py",
    "sessions_app/tests/test_admission.py",
    "sessions_app/tests/test_session_api.py",
    "sessions_app/tests/test_transcript.py",
    "sessions_app/tests/test_transcript_versions.py",
    "sessions_app/tests/test_operator_actions.py",
]


def test_the_database_tests_of_scale_out_pass_on_postgresql(tmp_path):
    with PostgresServer(tmp_path) as postgres:
        url = postgres.create_database("transcriber")
        result = subprocess.run(
            # --reuse-db keeps pytest-django's test database, to show below that it was this one
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reuse-db", "-m", "not slow", *MODULES],
            env={**os.environ, "DATABASE_URL": url},
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        with psycopg.connect(postgres.url("postgres")) as connection:
            databases = {name for (name,) in connection.execute("SELECT datname FROM pg_database")}

    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "test_transcriber" in databases  # the tests ran on PostgreSQL, not on a SQLite fallback
    assert re.match(r"\d+ passed(, \d+ deselected)? in ", summary), summary  # nothing skipped, failed or in error
