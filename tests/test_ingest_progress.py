"""`cityfed node ingest` against real node processes: a long load shows its progress on a
terminal (through the node, and without one), and a row of the wrong width is named by its line
with nothing of it in the client's error, the node's log or the audit log."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys

import pytest

from cli.ingest import LoadEstimator, describe
from federation.synthetic import RegionScale
from federation.synthetic.local_region import AUTHORITY, write_region
from node.ingest import Phase, Progress
from tests.regionkit import open_policy
from tests.test_shutdown import CITY, audit_records, ingest, node_log, start, write_big_csv

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def region(tmp_path):
    return write_region(tmp_path, scale=RegionScale(people_per_city=300, trips_per_city=300,
                                                    visits_per_city=300),
                        cities=(CITY,), policy=open_policy(AUTHORITY))


def on_terminal(argv: list[str], timeout: float = 120) -> tuple[int, list[str]]:
    """Run a command on a pseudo-terminal of 150 columns: its exit code and the lines it drew
    (each redraw of a progress bar is a line)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(argv, stdin=terminal, stdout=terminal, stderr=terminal,
                               env={**os.environ, "COLUMNS": "150", "TERM": "xterm-256color"})
    os.close(terminal)
    drawn = b""
    try:
        while select.select([controller], [], [], timeout)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the command has closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
    text = _ESCAPES.sub("", drawn.decode("utf-8", "replace"))
    return process.wait(timeout), [line.strip() for line in re.split(r"[\r\n]+", text)
                                   if line.strip()]


def test_a_long_load_shows_rows_rate_and_time_left_on_a_terminal(region, tmp_path):
    config = tmp_path / f"{CITY}.toml"
    csv = write_big_csv(tmp_path / "pensions.csv", 500_000)
    command = [sys.executable, "-m", "cli", "node", "ingest", str(csv), "--config", str(config),
               "--dataset", "social_insurance"]
    node, _ = start(config)
    try:
        code, lines = on_terminal(command)
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(60) == 0
    assert code == 0, lines
    assert lines[-1] == ("loaded 500000 rows into social_insurance through the running node; "
                         "it now holds 500000")
    bars = [line for line in lines if line.startswith("social_insurance: ")]
    assert any(re.search(r"reading the file .* ≈ [\d,]+ rows", bar) for bar in bars), lines
    assert any(re.search(r"\d+% 500,000 rows · [\d,]+ rows/s · \d+:\d\d left", bar)
               for bar in bars), lines

    code, lines = on_terminal([*command, "--append"])  # no node runs: the command loads itself
    assert code == 0, lines
    assert lines[-1] == "loaded 500000 rows into social_insurance; it now holds 1000000"
    assert any("rows/s" in line and "left" in line for line in lines), lines


@pytest.mark.parametrize("bad_row", [["110101199001010015", "pension"],
                                     ["110101199001010015", "pension", "active", "2010-05-01",
                                      "4321.50", "2026-10-01", "110101199001010023"]])
def test_a_row_of_the_wrong_width_is_named_by_its_line_and_no_value_reaches_a_log(
        region, tmp_path, bad_row):
    config = tmp_path / f"{CITY}.toml"
    csv = tmp_path / "monthly.csv"
    csv.write_text("person_id,scheme,status,enrolled_on,monthly_amount,last_paid_on\n"
                   "110101199001010007,pension,active,2010-05-01,4321.50,2026-10-01\n"
                   + ",".join(bad_row) + "\n")
    node, _ = start(config)
    try:
        loading = ingest(config, csv)
        out, err = loading.communicate(timeout=60)
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(60) == 0
    assert loading.returncode == 1 and not out
    assert err.strip() == (f"error: INVALID_ARGUMENT: {csv}: line 3 (data row 2): the row has "
                           f"{len(bad_row)} values, the header names 6 columns")
    logged = node_log(config) + repr(audit_records(tmp_path))
    assert "INGEST_REJECTED" in logged
    for value in {*bad_row, "110101199001010007", "4321.50"}:
        assert value not in err and value not in logged


def test_the_estimate_moves_on_through_the_phases_and_says_the_time_left():
    estimator = LoadEstimator(started=0.0)
    reports = [
        (0.5, Progress(Phase.READING, 100_000, None, 1_000_000, 10_000_000)),
        (4.0, Progress(Phase.READING, 1_000_000, None, 10_000_000, 10_000_000)),
        (5.0, Progress(Phase.CHECKING, 500_000, 1_000_000, 10_000_000, 10_000_000)),
        (8.0, Progress(Phase.WRITING, 1_000_000, 1_000_000, 10_000_000, 10_000_000)),
        (8.1, Progress(Phase.ORDERING, 0, 1_000_000, 10_000_000, 10_000_000)),
        (12.0, Progress(Phase.ORDERING, 0, 1_000_000, 10_000_000, 10_000_000)),
        (40.0, Progress(Phase.ORDERING, 0, 1_000_000, 10_000_000, 10_000_000)),
        (40.5, Progress(Phase.COMMITTING, 0, 1_000_000, 10_000_000, 10_000_000)),
    ]
    estimates = [estimator.estimate(progress, now) for now, progress in reports]
    fractions = [e.fraction for e in estimates]
    assert fractions == sorted(fractions) and fractions[0] > 0 and fractions[-1] < 1
    first = estimates[0]
    assert (first.rows, first.rows_known) == (1_000_000, False)  # from the bytes read
    assert estimates[2].rows_known and estimates[2].rows == 1_000_000
    # Ordering is one statement: its share grows with time, never to the end.
    assert estimates[5].fraction > estimates[4].fraction
    assert estimates[6].fraction < 0.52 + 0.34
    assert all(e.seconds_left is not None and e.seconds_left >= 0 for e in estimates)
    assert describe(estimates[2]) == (
        f"1,000,000 rows · {estimates[2].rows_per_second:,.0f} rows/s · "
        f"{int(estimates[2].seconds_left // 60)}:{round(estimates[2].seconds_left) % 60:02d} left")
