"""`billing invoice` in file mode against a bare read-and-json.loads loop over the same file.

    python bench/invoice_file.py                      # 250k, 500k and 1M events, best of 3
    python bench/invoice_file.py --events 1000000 --repeat 1
    python bench/invoice_file.py --order random       # events shuffled over the month

For each size it writes the workload into bench/out/ (once: the generator,
bench/gen_workload.py, is deterministic), then runs, each in a fresh process:
- the real command: `billing invoice --contract … --events … --period 2026-05 --format json`;
- the floor: a loop that only reads each line of the file and `json.loads` it.
Times are the best of --repeat runs, the two commands taking turns so that both
meet the same machine. Peak memory is the child's ru_maxrss (os.wait4 gives each
child's own rusage, the figure RUSAGE_CHILDREN reports); "MB per M events" is the
peak above that of an invoice over 1,000 events, per million events. CPU time
(user + sys) is shown as a ratio too: on a shared machine it moves less than wall.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
BIN = Path(sys.executable).parent
PERIOD = "2026-05"
SITES = 60
BARE_LOOP = "import json, sys\nwith open(sys.argv[1], 'rb') as f:\n    for line in f:\n        json.loads(line)\n"
TARGET_RATIO, FLOOR_RATIO = 1.0, 0.5


def run_child(argv: list[str]) -> tuple[float, float, float, int, bytes]:
    """(wall s, CPU s, peak MB, exit status, stderr) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode, err


def workload(events: int, order: str) -> tuple[Path, Path]:
    """The contract and the events file, written by gen_workload in a process of its own.

    (A child's peak memory starts from this process's size when it is started,
    so this process stays small.)
    """
    OUT.mkdir(exist_ok=True)
    contract = OUT / "bench.pricing"
    generate = [sys.executable, str(HERE / "gen_workload.py")]
    contract.write_bytes(subprocess.run(generate + ["contract", "--sites", str(SITES)],
                                        check=True, capture_output=True).stdout)
    path = OUT / (f"events-{events}.jsonl" if order == "time" else f"events-{events}-{order}.jsonl")
    if not path.exists():
        started = time.perf_counter()
        subprocess.run(generate + ["events", "--events", str(events), "--sites", str(SITES), "--order", order,
                                   "--output", str(path)], check=True)
        print(f"  wrote {path.relative_to(HERE.parent)} ({path.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return contract, path


def invoice_argv(contract: Path, events: Path) -> list[str]:
    return [str(BIN / "billing"), "invoice", "--contract", str(contract), "--events", str(events),
            "--period", PERIOD, "--format", "json", "--output", str(OUT / f"invoice-{events.stem}.json")]


def measure(events: int, repeat: int, order: str) -> dict:
    contract, path = workload(events, order)
    invoices, bares = [], []
    for _ in range(repeat):
        invoices.append(run_child(invoice_argv(contract, path)))
        bares.append(run_child([sys.executable, "-c", BARE_LOOP, str(path)]))
    status, err = invoices[-1][3], invoices[-1][4].decode(errors="replace")
    if status != 0:
        sys.exit(f"billing invoice failed (exit {status}):\n{err}")
    return dict(events=events,
                wall=min(r[0] for r in invoices), cpu=min(r[1] for r in invoices), peak=max(r[2] for r in invoices),
                bare_wall=min(r[0] for r in bares), bare_cpu=min(r[1] for r in bares),
                bare_peak=max(r[2] for r in bares), summary=(err.strip().splitlines() or ["(none)"])[-1])


def baseline_peak(order: str) -> float:
    """The peak memory of an invoice over 1,000 events: interpreter, libraries, contract, engine."""
    contract, path = workload(1_000, order)
    return run_child(invoice_argv(contract, path))[2]


def report(rows: list[dict], base: float) -> bool:
    print(f"{'events':>9} | {'invoice s':>9} {'events/s':>9} | {'bare s':>7} {'events/s':>9} | "
          f"{'ratio':>5} {'CPU ratio':>9} | {'peak MB':>7} {'MB per M events':>15}")
    for r in rows:
        rate, bare_rate = r["events"] / r["wall"], r["events"] / r["bare_wall"]
        per_million = (r["peak"] - base) / (r["events"] / 1e6)
        print(f"{r['events']:>9,} | {r['wall']:>9.2f} {rate:>9,.0f} | {r['bare_wall']:>7.2f} {bare_rate:>9,.0f} | "
              f"{rate / bare_rate:>5.2f} {r['bare_cpu'] / r['cpu']:>9.2f} | {r['peak']:>7.1f} {per_million:>15.1f}")
    print(f"peak of an invoice over 1,000 events: {base:.1f} MB; the bare loop peaks at "
          f"{max(r['bare_peak'] for r in rows):.1f} MB")
    print(f"last run's summary: {rows[-1]['summary']}")
    worst = min(r["bare_wall"] / r["wall"] for r in rows)
    verdict = "met" if worst >= TARGET_RATIO else "floor met" if worst >= FLOOR_RATIO else "MISSED"
    print(f"target: the invoice at least as fast as the bare loop, never below {FLOOR_RATIO}x of it; "
          f"worst ratio {worst:.2f} -> {verdict}")
    return worst >= FLOOR_RATIO


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the best time counts")
    parser.add_argument("--order", choices=("time", "random"), default="time",
                        help="events in time order as a feed writes them (default), or shuffled over the month")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cpus, {cpu_model()}, Python {sys.version.split()[0]}; "
          f"events in {args.order} order; load average {os.getloadavg()[0]:.1f} at the start")
    base = baseline_peak(args.order)
    rows = [measure(n, args.repeat, args.order) for n in sorted(args.events)]
    return 0 if report(rows, base) else 1


if __name__ == "__main__":
    sys.exit(main())
