"""What an account block costs (issue 15's speed guard rail): the 60-site, 1M-event invoice with and without one.

    python bench/account_block.py                          # file mode and database mode (SQLite), 5 runs each
    python bench/account_block.py --mode file --runs 7
    python bench/account_block.py --mode db --backend postgresql

The workload is bench/gen_workload.py's (60 sites x 10 categories, events in May
2026, the contract from January). "with" is the same contract with an account
block that is active in every period: an account minimum, a pooled yearly cap
and a prepaid commitment, so that the account phase draws down, counts the cap
and tops up. Each run is a fresh `billing invoice` process; the two contracts
take turns run by run, so that both meet the same machine. The figures are the
median wall and CPU (user + sys, from os.wait4) of the runs; the guard rail is
"with" within 5% of "without".
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gen_workload  # noqa: E402
from ingest_db import DEFAULT_POSTGRES, fresh_database, machine  # noqa: E402

BILLING = str(Path(sys.executable).with_name("billing"))
PERIOD = "2026-05"
ACCOUNT_BLOCK = """
    account {
        minimum 500_000.00 monthly
        cap 20_000_000.00 yearly
        commit 3_000_000.00 yearly prepaid
    }
}
"""


def contracts(directory: Path) -> dict[str, Path]:
    """{"without": path, "with": path}: the benchmark's contract, and the same with an account block."""
    text = gen_workload.contract_text(60)
    assert text.rstrip().endswith("}")
    with_block = text.rstrip()[:-1] + ACCOUNT_BLOCK
    paths = {"without": directory / "account-without.pricing", "with": directory / "account-with.pricing"}
    paths["without"].write_text(text, encoding="utf-8")
    paths["with"].write_text(with_block, encoding="utf-8")
    return paths


def timed(args: list[str], env: dict) -> tuple[float, float]:
    started = time.perf_counter()
    process = subprocess.Popen([BILLING, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    errors = process.stderr.read().decode()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"billing {' '.join(args)} failed: {errors}")
    return seconds, usage.ru_utime + usage.ru_stime


def setup(mode: str, args, events: Path, paths: dict[str, Path]):
    """For each variant, (the invoice command's arguments, its environment) and the clean-ups."""
    commands, drops = {}, []
    for variant, contract in paths.items():
        if mode == "file":
            commands[variant] = (["invoice", "--contract", str(contract), "--events", str(events), "--period", PERIOD,
                                  "--format", "json", "--output", str(args.workdir / f"account-{variant}.json")],
                                 dict(os.environ))
            continue
        url, drop = fresh_database(args.backend, args.workdir, args.postgres_url, f"account-{variant}")
        drops.append(drop)
        env = {**os.environ, "BILLING_DATABASE_URL": url}
        for step in (["db", "upgrade"], ["contract", "save", str(contract)], ["ingest", str(events)]):
            result = subprocess.run([BILLING, *step], capture_output=True, text=True, env=env)
            if result.returncode not in (0, 1):
                sys.exit(f"billing {' '.join(step)} failed: {result.stderr}")
        commands[variant] = (["invoice", "--customer", gen_workload.CONTRACT_ID, "--period", PERIOD, "--output",
                              str(args.workdir / f"account-{variant}-db.json")], env)
    return commands, drops


def run(mode: str, args, events: Path, paths: dict[str, Path]) -> None:
    label = "file mode" if mode == "file" else f"database mode ({args.backend})"
    commands, drops = setup(mode, args, events, paths)
    try:
        for command, env in commands.values():
            timed(command, env)                      # once each, not counted: caches warm (lark's, the OS's)
        results: dict[str, list[tuple[float, float]]] = {variant: [] for variant in commands}
        loads = []
        for _ in range(args.runs):
            loads.append(os.getloadavg()[0])
            for variant, (command, env) in commands.items():
                results[variant].append(timed(command, env))
    finally:
        for drop in drops:
            drop()
    print(f"\n== {label}, {args.runs} runs each in turns, load average {min(loads):.1f}-{max(loads):.1f}")
    medians = {}
    for variant, timings in results.items():
        walls, cpus = [w for w, _ in timings], [c for _, c in timings]
        medians[variant] = (statistics.median(walls), statistics.median(cpus))
        print(f"{variant:>8} account block: wall median {medians[variant][0]:.3f} s "
              f"(best {min(walls):.3f}), CPU median {medians[variant][1]:.3f} s (best {min(cpus):.3f})")
    wall = medians["with"][0] / medians["without"][0] - 1
    cpu = medians["with"][1] / medians["without"][1] - 1
    print(f"with / without: wall {wall:+.1%}, CPU {cpu:+.1%} (guard rail: within +5%)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", choices=("file", "db", "both"), default="both")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("BILLING_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    events = args.workdir / f"ingest-{args.events}.jsonl"
    if not events.exists():
        gen_workload.write_events(events, args.events, 60)
    paths = contracts(args.workdir)
    print(f"machine: {machine()}")
    for mode in (("file", "db") if args.mode == "both" else (args.mode,)):
        run(mode, args, events, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
