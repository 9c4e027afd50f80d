"""Commands that need no database: `billing check`, `billing plan`, `billing invoice` from files."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from billing.contracts import UsageError, build_timeline, compile_versions, parse_version_spec
from billing.output import MISUSE, OK, WRONG_INPUT, emit, say
from dsl.compile import compile_file
from engine.evaluate import bill
from engine.periods import Period
from engine.plan_view import plan_json, plan_text
from invoicing.invoice import build_invoice
from invoicing.render import FORMATS, render_document
from metering.aggregate import meter


def cmd_check(args) -> int:
    status = OK
    for path in args.files:
        try:
            result = compile_file(path)
        except OSError as exc:
            say(f"{path}: error: cannot read the file: {exc.strerror or exc}")
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
            say(diagnostic.render(spec.path))
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
        emit(json.dumps(plan_json(plan, args.site), indent=2) + "\n", None)
    else:
        emit(plan_text(plan, args.site), None)
    return OK


def cmd_invoice(args) -> int:
    if args.customer:
        from billing.commands.db import cmd_invoice_from_db

        return cmd_invoice_from_db(args)
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
        say(str(rejection))

    try:
        metered = meter([args.events], terms.contract_id, ZoneInfo(terms.timezone), on_reject, until=period)
    except OSError as exc:
        raise UsageError(f"{args.events}: cannot read the events: {exc.strerror or exc}") from None
    result = bill(timeline, metered.usage, period)
    invoice = build_invoice(result, metered.unbilled.period(period))
    emit(render_document(invoice, args.format), args.output)
    summary = metered.summary
    if summary.rejected_total or summary.other_customers:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(summary.rejected.items()))
        say(
            f"{args.events}: {summary.read} events read, {summary.accepted} accepted, "
            f"{summary.duplicates} duplicates, {summary.conflicts} conflicts, "
            f"{summary.rejected_total} rejected{f' ({reasons})' if reasons else ''}, "
            f"{summary.other_customers} of other customers (not on this contract's invoice)"
        )
    return WRONG_INPUT if rejected else OK


def register(commands) -> None:
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
    invoice.add_argument("--customer", metavar="CONTRACT_ID", help="compute from the database (BILLING_DATABASE_URL)")
    invoice.add_argument("--period", required=True, metavar="YYYY-MM")
    invoice.add_argument("--format", choices=FORMATS, default="json",
                         help="pdf writes bytes: give --output PATH or redirect standard output")
    invoice.add_argument("--output", metavar="PATH")
    invoice.set_defaults(run=cmd_invoice)
