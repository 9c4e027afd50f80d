"""Commands that use the database (interfaces §2): `db upgrade`, `contract save|history`, `ingest`,
and `invoice --customer` (the invoice parser is file_mode's; it hands over here).

The database is the environment's (settings/environment.py: BILLING_DATABASE_URL, else
the database of the environment BILLING_ENV names, `billing.db` in the working directory for test).
One that cannot be reached is one sentence and exit 2; the storage modules are
imported only when a command needs them, so the file-mode commands stay quick.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from contextlib import contextmanager

from billing.contracts import InputError, UsageError
from billing.output import OK, WRONG_INPUT, emit, say
from billing.progress import Progress
from engine.periods import Period

SHOWN_REJECTIONS_WITH_FILE = 10


@contextmanager
def database(create_schema: bool = False):
    """A session factory for the environment's database; its failures become one clear UsageError."""
    from sqlalchemy.exc import DBAPIError

    from audit.anchors import Anchoring, watch
    from billing.commands.portal import cli_environment
    from storage import db, schema

    environment = cli_environment()
    url = environment.database_url
    engine = None
    try:
        engine = db.connect(url)
        if not create_schema:
            schema.require_current(engine)
        sessions = db.session_factory(engine)
        anchoring = Anchoring.configured(environment.audit_anchor_file, environment.audit_key, environment.name)
        if anchoring is not None:
            watch(sessions, anchoring)
        yield engine, sessions
    except db.DatabaseUnavailable as exc:
        raise UsageError(str(exc)) from None
    except DBAPIError as exc:
        raise UsageError(f"the database {db.shown(engine.url)} failed: {db.reason(exc)}") from None
    finally:
        if engine is not None:
            engine.dispose()


def cmd_db_upgrade(args) -> int:
    from storage import db, schema

    with database(create_schema=True) as (engine, _):
        before, now = schema.upgrade(engine)
    where = db.shown(engine.url)
    if before == now:
        print(f"{where}: the schema is current (revision {now})")
    elif before is None:
        print(f"{where}: created the schema (revision {now})")
    else:
        print(f"{where}: upgraded the schema from revision {before} to {now}")
    return OK


def _period(option: str, text: str | None) -> Period | None:
    if text is None:
        return None
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def cmd_contract_save(args) -> int:
    """Every attempt to save is recorded in the audit log (contract.save): a refused one, a contract with errors
    included, as a failure with its reason; a misused command (an unreadable file, a bad option) is not one."""
    from billing.commands.portal import cli_actor
    from dsl.compile import compile_file
    from billing.refusals import refusal_text
    from engine.refusal import Refused
    from ledger.contracts import author_name, save_contract

    effective = _period("--effective", args.effective)
    who = cli_actor()
    try:
        compiled = compile_file(args.file)
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read the contract: {exc.strerror or exc}") from None
    for diagnostic in compiled.diagnostics:
        say(diagnostic.render(args.file))
    asked = {"source": f"file {args.file}", "in_effect_from": args.effective, "comment": args.comment or "",
             "author": args.author or author_name()}
    with database() as (_, sessions):
        if not compiled.ok:
            _refused_save(sessions, who, compiled, asked, "the contract has errors")
            say(f"{args.file}: not saved: the contract has errors")
            return WRONG_INPUT
        try:
            with sessions.begin() as session:
                saved = save_contract(session, compiled, effective=effective, comment=args.comment or "",
                                      author=args.author)
                _record_save(session, who, saved, asked)
        except Refused as exc:
            _refused_save(sessions, who, compiled, asked, exc.refusal.message)
            raise InputError(f"{args.file}: {refusal_text(exc.refusal)}") from None
    short = saved.sha256[:12]
    if saved.outcome == "unchanged":
        was = saved.same_as
        print(f"{saved.contract_id}: unchanged: {args.file} is identical to the version in effect from "
              f"{was.effective} (saved {was.saved_at:%Y-%m-%d %H:%M} UTC by {was.author}); nothing saved")
    elif saved.outcome == "created":
        print(f"{saved.contract_id}: saved the first version (sha256 {short}), in effect from {saved.effective}")
    else:
        replaced = ""
        if saved.outcome == "replaced":
            was = saved.same_as
            replaced = (f"; it replaces the version for {was.effective} saved "
                        f"{was.saved_at:%Y-%m-%d %H:%M} UTC by {was.author} (sha256 {was.sha256[:12]})")
        print(f"{saved.contract_id}: saved a new version (sha256 {short}), in effect from {saved.effective}{replaced}")
    return OK


def _record_save(session, who, saved, asked: dict) -> None:
    from audit.log import contract_resource, details, record

    replaced = saved.same_as if saved.outcome == "replaced" else None
    record(session, who, "contract.save", contract_resource(saved.contract_id, saved.sha256),
           details=details("contract.save", **{**asked, "result": saved.outcome, "in_effect_from": str(saved.effective),
                                                "replaces": replaced.sha256 if replaced else None}))


def _refused_save(sessions, who, compiled, asked: dict, reason: str) -> None:
    """The refusal, in a transaction of its own (the save's was rolled back)."""
    import hashlib

    from audit.log import FAILURE, contract_resource, details, record

    sha256 = hashlib.sha256(compiled.text.encode("utf-8")).hexdigest() if compiled.text else None
    resource = contract_resource(compiled.contract.id, sha256) if compiled.contract else \
        f"file:{asked['source'].removeprefix('file ')}"
    with sessions.begin() as session:
        record(session, who, "contract.save", resource, outcome=FAILURE,
               details=details("contract.save", **asked, reason=reason))


def cmd_contract_history(args) -> int:
    from audit.log import contract_resource
    from ledger.history import contract_history, render_history

    with database() as (_, sessions):
        with sessions() as session:
            history = contract_history(session, args.contract_id)   # UnknownContract: a refusal, said by cli.py
        _record_read(sessions, "contract.history", contract_resource(args.contract_id), {})
    emit(render_history(history), None)
    return OK


def cmd_ingest(args) -> int:
    import msgspec

    from ingest.file_batches import FileReader
    from metering.events import Rejection

    for path in args.files:
        try:
            open(path, "rb").close()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the events: {exc.strerror or exc}") from None
    rejects = None
    if args.rejects:
        try:
            rejects = open(args.rejects, "w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--rejects {args.rejects}: cannot write: {exc.strerror or exc}") from None
    statuses, reasons = Counter(), Counter()
    late = 0
    batching = {"batch_size": args.batch_size} if args.batch_size else {}
    # The first file is read (by a worker process) while the database layer is imported and connected.
    first = FileReader(args.files[0], **batching)
    try:
        with database() as (_, sessions):
            from ingest.pipeline import ACCEPTED, REJECTED, count_outcomes, ingest_file

            for index, path in enumerate(args.files):
                progress = Progress.for_file(path)
                done = 0
                reader = first if index == 0 else None
                for batch in ingest_file(sessions, path, reader=reader, **batching):   # counted a batch at a time
                    counted = count_outcomes(batch.outcomes)
                    for (status, _), n in counted.items():
                        statuses[status] += n
                    late += counted[ACCEPTED, True]
                    done += len(batch.outcomes)
                    if any(status == REJECTED for status, _ in counted):
                        for line, item, outcome in zip(batch.lines, batch.items, batch.outcomes):
                            if outcome.status != REJECTED:
                                continue
                            reasons[outcome.reason] += 1
                            if rejects is None or reasons.total() <= SHOWN_REJECTIONS_WITH_FILE:
                                say(f"{path}:{line}: rejected: {outcome.detail}")
                            if rejects is not None:
                                text = item.text if isinstance(item, Rejection) else msgspec.json.encode(item).decode()
                                rejects.write(json.dumps({"file": path, "line": line, "reason": outcome.reason,
                                                          "detail": outcome.detail, "text": text}) + "\n")
                    if progress is not None and batch.lines:
                        progress.update(batch.lines[-1], done)
                if progress is not None:
                    progress.close()
    finally:
        first.close()
        if rejects is not None:
            rejects.close()
    rejected = reasons.total()
    if rejects is not None and rejected > SHOWN_REJECTIONS_WITH_FILE:
        say(f"… {rejected - SHOWN_REJECTIONS_WITH_FILE:,} more rejected lines, all of them in {args.rejects}")
    because = f" ({', '.join(f'{n:,} {r}' for r, n in sorted(reasons.items()))})" if reasons else ""
    print(f"ingested {_count(len(args.files), 'file')}: {_count(statuses.total(), 'event')} read, "
          f"{statuses[ACCEPTED]:,} accepted{f' ({late:,} late)' if late else ''}, "
          f"{_count(statuses['duplicate'], 'duplicate')}, {_count(statuses['conflict'], 'conflict')}, "
          f"{rejected:,} rejected{because}")
    return WRONG_INPUT if rejected else OK


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def cmd_invoice_from_db(args) -> int:
    """`billing invoice --customer ID --period P`: file_mode's invoice command hands over here; every format is
    rendered by the same helper as in file mode (invoicing/render.py), so both give the same documents."""
    from audit.log import details, invoice_resource
    from invoicing.render import render_document
    from invoicing.stored import invoice_from_document
    from ledger.billing_from_db import invoice_from_db
    from ledger.invoices import Selector, find, status_of

    if args.contract or args.events:
        raise UsageError("--customer computes from the database: leave out --contract and --events")
    period = _period("--period", args.period)
    with database() as (_, sessions):
        with sessions() as session:
            computed = invoice_from_db(session, args.customer, period)   # refusals are said by billing/cli.py
            # interfaces §4: the JSON of a stored draft or issued invoice, with its seller, buyer, credits and tax
            # and every format renders that stored document, as the portal does (numbered when issued)
            stored = find(session, Selector(args.customer, period))
            state = status_of(session, stored) if stored is not None else None
            invoice, document, marks = computed.invoice, computed.document, {}
            if stored is not None and state != "void":
                document = stored.document
                invoice = invoice_from_document(document, timezone=computed.invoice.timezone)
                if stored.number:
                    marks = {"number": stored.number, "status": "issued", "issued_on": stored.issued_at.date()}
                else:
                    marks = {"status": state}
        _record_read(sessions, "invoice.view", invoice_resource(args.customer, period),
                     details("invoice.view", status=state, format=args.format,
                             computed=document is computed.document, output=args.output or "standard output"))
    if args.format != "pdf":
        marks = {"number": marks["number"]} if "number" in marks else {}
    emit(render_document(invoice, args.format, document=document, **marks), args.output)
    return OK


def _record_read(sessions, action: str, resource: str, details: dict) -> None:
    """A read of financial data on the command line is recorded like one in the portal, before it is shown."""
    from audit.log import record
    from billing.commands.portal import cli_actor

    with sessions.begin() as session:
        record(session, cli_actor(), action, resource, details=details)


def register(commands) -> None:
    db = commands.add_parser("db", help="create or migrate the database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("upgrade", help="create or migrate the schema").set_defaults(run=cmd_db_upgrade)

    contract = commands.add_parser("contract", help="save contract versions, show their history")
    contract_commands = contract.add_subparsers(dest="contract_command", required=True, metavar="COMMAND")
    save = contract_commands.add_parser("save", help="store a new version of the contract named in FILE")
    save.add_argument("file", metavar="FILE.pricing")
    save.add_argument("--effective", metavar="YYYY-MM",
                      help="the period it takes effect (default: the next period boundary after today)")
    save.add_argument("--comment", metavar="TEXT", help="why this version")
    save.add_argument("--author", help="who saves it (default: the user running the command)")
    save.set_defaults(run=cmd_contract_save)
    history = contract_commands.add_parser("history", help="every version: when, who, effective period, "
                                                           "comment, what changed, which periods it bills")
    history.add_argument("contract_id", metavar="CONTRACT_ID")
    history.set_defaults(run=cmd_contract_history)

    ingest = commands.add_parser("ingest", help="store usage events (JSONL or CSV) in the database")
    ingest.add_argument("files", nargs="+", metavar="EVENTS.jsonl|.csv")
    ingest.add_argument("--rejects", metavar="PATH", help="write the rejected lines, with reasons, as JSON Lines")
    ingest.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)   # events per transaction
    ingest.set_defaults(run=cmd_ingest)
