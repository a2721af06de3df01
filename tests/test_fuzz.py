"""A quick run of ``benchmarks/fuzz.py``: every 8th odd input (~75 cases) ends in a result or a
DeepCutError, with no crash, no hang and no allocation over the cap."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_quick_fuzz_has_no_crash_hang_or_allocation_over_the_cap():
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fuzz.py"), "--quick", "--timeout", "60"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    table = [line for line in r.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    cases, ok, clean, crashes, hangs, over = (int(v) for v in table[0].split("|")[1:7])
    assert cases >= 60 and ok > 10 and clean > 10
    assert (crashes, hangs, over) == (0, 0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("group", ["h22-out/", "h22-label/"])
def test_issue_22_cli_classes_have_no_crash_hang_or_allocation_over_the_cap(group):
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fuzz.py"), "--only", group, "--timeout", "60"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    table = [line for line in r.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    cases, ok, clean, crashes, hangs, over = (int(v) for v in table[0].split("|")[1:7])
    assert cases >= 25 and (crashes, hangs, over) == (0, 0, 0)


@pytest.mark.slow
def test_issue_33_classes_have_no_crash_hang_over_cap_or_loss():
    """Live floods, quiet and second streams, bad frames, inline images past the caps, values no page sends,
    corrections and slides with odd values, runs into held outputs (``benchmarks/fuzz_cases_h33.py``)."""
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fuzz.py"), "--only", "h33/", "--timeout", "60"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    table = [line for line in r.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    cases, ok, clean, crashes, hangs, over = (int(v) for v in table[0].split("|")[1:7])
    assert cases >= 60 and ok > 20 and clean > 10 and (crashes, hangs, over) == (0, 0, 0)
