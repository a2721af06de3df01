"""Running fuzz cases (see ``benchmarks/fuzz.py``): each in a forked child, watched for time and memory.

A child resets its peak resident memory (``/proc/self/clear_refs``), runs its case and writes one line
of JSON to a pipe: the outcome and its ``VmHWM``. The parent polls every running child's ``VmRSS``,
kills a child above the cap or past the timeout, and counts a child that died without a report as a
crash.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback
from typing import Callable

Case = tuple[str, Callable[[], object]]
CLEAN_EXIT_CODES = (0, 1, 2, 130)


def _status_kb(pid: int | str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _child(fn: Callable[[], object], write_fd: int) -> None:
    """Run ``fn`` in this (forked) child and report ``{"outcome", "detail", "peak_kb"}``; never returns."""
    import deepcut

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    outcome, detail = "ok", ""
    try:
        value = fn()
        if isinstance(value, int) and not isinstance(value, bool) and value not in CLEAN_EXIT_CODES:
            outcome, detail = "crash", f"exit status {value}"
    except deepcut.DeepCutError as e:
        outcome, detail = "clean", f"{type(e).__name__}: {str(e)[:160]}"
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        outcome, detail = ("clean", f"exit {code}") if code in CLEAN_EXIT_CODES else ("crash", f"exit {code}")
    except BaseException:  # noqa: BLE001 - that is what the fuzz looks for
        outcome, detail = "crash", "".join(traceback.format_exc().splitlines(True)[-6:])
    report = json.dumps({"outcome": outcome, "detail": detail, "peak_kb": _status_kb("self", "VmHWM")})
    try:
        os.write(write_fd, report.encode() + b"\n")
    finally:
        os._exit(0)


def _start(case: Case) -> dict:
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        _child(case[1], write_fd)
    os.close(write_fd)
    return {"name": case[0], "pid": pid, "fd": read_fd, "start": time.perf_counter(), "buf": b"", "rss_kb": 0}


def _finish(job: dict, outcome: str | None = None, detail: str = "") -> dict:
    if outcome is not None:
        try:
            os.kill(job["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(job["pid"], 0)
    os.close(job["fd"])
    peak = job["rss_kb"]
    if outcome is None:
        try:
            rep = json.loads(job["buf"].decode().strip().splitlines()[-1])
            outcome, detail, peak = rep["outcome"], rep["detail"], max(peak, rep["peak_kb"])
        except (ValueError, IndexError, KeyError):
            outcome, detail = "crash", f"the child died without a report (status {status})"
    return {"name": job["name"], "outcome": outcome, "detail": detail, "peak_kb": peak,
            "seconds": time.perf_counter() - job["start"]}


def _poll(job: dict, timeout: float, cap_kb: int) -> dict | None:
    """One look at a running child: its finished result, or None while it runs."""
    ready, _, _ = select.select([job["fd"]], [], [], 0)
    if ready:
        chunk = os.read(job["fd"], 65536)
        job["buf"] += chunk
        if not chunk or job["buf"].endswith(b"\n"):
            return _finish(job)
    job["rss_kb"] = max(job["rss_kb"], _status_kb(job["pid"], "VmRSS"))
    if job["rss_kb"] > cap_kb:
        return _finish(job, "over cap", f"resident memory {job['rss_kb'] / 1e6:.2f} GB")
    if time.perf_counter() - job["start"] > timeout:
        return _finish(job, "hang", f"still running after {timeout:.0f} s")
    return None


def run_cases(cases: list[Case], timeout: float, cap: int, jobs: int = 2, verbose: bool = False) -> list[dict]:
    """Every case in a forked child, at most ``jobs`` at once; one result dict per case, in order."""
    pending = list(cases)
    running: list[dict] = []
    results: list[dict] = []
    while pending or running:
        while pending and len(running) < max(1, jobs):
            running.append(_start(pending.pop(0)))
        for job in list(running):
            res = _poll(job, timeout, cap // 1024)
            if res is not None:
                running.remove(job)
                results.append(res)
                if verbose or res["outcome"] not in ("ok", "clean"):
                    print(f"{res['outcome']:>8}  {res['seconds']:5.1f}s  {res['peak_kb'] / 1e6:5.2f}GB  {res['name']}"
                          f"  {res['detail'].splitlines()[-1] if res['detail'] else ''}", flush=True)
        time.sleep(0.02)
    order = {name: i for i, (name, _) in enumerate(cases)}
    return sorted(results, key=lambda r: order[r["name"]])


def report(results: list[dict], seconds: float, timeout: float, cap: int) -> int:
    """Print the table and the failing cases; 1 if any case crashed, hung or went over the cap."""
    count = {k: sum(r["outcome"] == k for r in results) for k in ("ok", "clean", "crash", "hang", "over cap")}
    peak = max((r["peak_kb"] for r in results), default=0) / 1e6
    slowest = max(results, key=lambda r: r["seconds"], default=None)
    print("\n| cases | ok | clean errors | crashes | hangs | over cap | max RSS | slowest case | total |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(results)} | {count['ok']} | {count['clean']} | {count['crash']} | {count['hang']} | "
          f"{count['over cap']} | {peak:.2f} GB (cap {cap / (1 << 30):.1f} GiB) | "
          f"{slowest['seconds'] if slowest else 0:.1f} s (limit {timeout:.0f} s) | {seconds:.0f} s |")
    bad = [r for r in results if r["outcome"] in ("crash", "hang", "over cap")]
    for r in bad:
        print(f"\n--- {r['outcome']}: {r['name']}\n{r['detail']}")
    return 1 if bad else 0
