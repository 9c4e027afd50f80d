"""The `billing` command (interfaces §2). Exit status: 0 success, 1 the input is wrong, 2 misuse.

A user's mistake is one clear line naming the file, the line and the reason;
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from billing.contracts import InputError, UsageError, build_timeline, compile_versions, parse_version_spec
from dsl.compile import compile_file
from engine.evaluate import OutsideContract, bill
from engine.periods import Period
from engine.plan_view import plan_json, plan_text
from invoicing.invoice import build_invoice, invoice_json
from invoicing.text import render_text
from metering.aggregate import meter

OK, WRONG_INPUT, MISUSE = 0, 1, 2


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_check(args) -> int:
    status = OK
    for path in args.files:
        try:
            result = compile_file(path)
        except OSError as exc:
            _say(f"{path}: error: cannot read the file: {exc.strerror or exc}")
            status = MISUSE
            continue
        for diagnostic in result.diagnostics:
            print(diagnostic.render(path))
        if result.ok:
            print(f"{path}: ok")
        elif status == OK:
            status = WRONG_INPUT
    return status


def _compiled_or_report(paths_and_results) -> bool:
    ok = True
    for spec, result in paths_and_results:
        for diagnostic in result.diagnostics:
            _say(diagnostic.render(spec.path))
        ok = ok and result.ok
    return ok


def cmd_plan(args) -> int:
    compiled = compile_versions([parse_version_spec(args.contract)])
    if not _compiled_or_report(compiled):
        return WRONG_INPUT
    plan = compiled[0][1].plan
    if args.site and plan.site(args.site) is None:
        raise UsageError(f"--site {args.site}: no such site in {args.contract} (sites: "
                         f"{', '.join(s.site for s in plan.sites) or 'none'})")
    if args.format == "json":
        _emit(json.dumps(plan_json(plan, args.site), indent=2) + "\n", None)
    else:
        _emit(plan_text(plan, args.site), None)
    return OK


def _emit(text: str | bytes, output: str | None) -> None:
    if output is None or output == "-":
        if isinstance(text, bytes):
            sys.stdout.buffer.write(text)
        else:
            sys.stdout.write(text)
        return
    try:
        Path(output).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{output}: cannot write the output: {exc.strerror or exc}") from None


def cmd_invoice(args) -> int:
    if not args.contract or not args.events:
        raise UsageError("file mode needs --contract FILE and --events FILE")
    try:
        period = Period.parse(args.period)
    except ValueError as exc:
        raise UsageError(f"--period: {exc}") from None
    compiled = compile_versions([parse_version_spec(text) for text in args.contract])
    if not _compiled_or_report(compiled):
        return WRONG_INPUT
    timeline = build_timeline(compiled)
    timeline.require_billed(period)
    terms = timeline.first.terms
    rejected = []

    def on_reject(rejection):
        rejected.append(rejection)
        _say(str(rejection))

    try:
        metered = meter([args.events], terms.contract_id, ZoneInfo(terms.timezone), on_reject, until=period)
    except OSError as exc:
        raise UsageError(f"{args.events}: cannot read the events: {exc.strerror or exc}") from None
    result = bill(timeline, metered.usage, period)
    invoice = build_invoice(result, metered.unbilled.period(period))
    if args.format == "text":
        _emit(render_text(invoice), args.output)
    else:
        _emit(json.dumps(invoice_json(invoice), indent=2) + "\n", args.output)
    summary = metered.summary
    if summary.rejected_total or summary.other_customers:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(summary.rejected.items()))
        _say(
            f"{args.events}: {summary.read} events read, {summary.accepted} accepted, "
            f"{summary.duplicates} duplicates, {summary.conflicts} conflicts, "
            f"{summary.rejected_total} rejected{f' ({reasons})' if reasons else ''}, "
            f"{summary.other_customers} of other customers (not on this contract's invoice)"
        )
    return WRONG_INPUT if rejected else OK


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="billing", description="Enterprise billing engine: contracts, usage, invoices.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="compile contracts and report every error and warning")
    check.add_argument("files", nargs="+", metavar="CONTRACT.pricing")
    check.set_defaults(run=cmd_check)

    plan = commands.add_parser("plan", help="print a contract's ordered evaluation plan")
    plan.add_argument("contract", metavar="CONTRACT.pricing")
    plan.add_argument("--site")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.set_defaults(run=cmd_plan)

    invoice = commands.add_parser("invoice", help="compute one period's invoice")
    invoice.add_argument("--contract", action="append", metavar="FILE[@YYYY-MM]")
    invoice.add_argument("--events", metavar="EVENTS.jsonl|.csv")
    invoice.add_argument("--period", required=True, metavar="YYYY-MM")
    invoice.add_argument("--format", choices=("json", "text"), default="json")
    invoice.add_argument("--output", metavar="PATH")
    invoice.set_defaults(run=cmd_invoice)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as exc:
        _say(f"billing {args.command}: {exc}")
        return MISUSE
    except (InputError, OutsideContract) as exc:
        _say(f"billing {args.command}: {exc}")
        return WRONG_INPUT
    except KeyboardInterrupt:
        _say("billing: interrupted")
        return 130
