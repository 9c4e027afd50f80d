"""Contracts, for the deal desk: edit the text with live checks, see the plan, save versions, read the history.

    GET  /contracts                          every contract: customer, version in effect, last saved by/when
    GET  /contracts?new=1                    the editor on the skeleton of a new contract
    POST /contracts                          a new contract's first version (in effect from its start)
    GET  /contracts/<customer>[?version=N]   the editor on the newest version's text (or version N's)
    POST /contracts/check                    JSON: the diagnostics and plan of the text posted (a new contract)
    POST /contracts/<customer>/check         the same, plus what saving over this contract would refuse
    POST /contracts/<customer>/save          a new version: comment, effective period (default: the next one)
    GET  /contracts/<customer>/versions      who saved which version, when, for which period, and why

The deal desk edits and saves; finance and admin read (the editor is read-only
for them); customer finance users see no contract. The check answers every
keystroke's text (debounced by admin_app/static/editor.js) with the
compiler's diagnostics as data: bad input is diagnostics, never an error page.
Saving goes through store/contracts.py's `save_contract` (the function
`billing contract save` calls); what it would refuse is said beside the field,
and the form keeps the text and comment typed. Every view of a contract, every
history and every save (refused ones too) is in the audit log.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from admin_app import auditing, portal
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.refusals import refusal_text
from admin_app.sessions import now
from audit.log import FAILURE, contract_resource
from audit.log import details as audit_details
from dsl.compile import Compiled, compile_source
from engine.periods import Period
from engine.plan_view import plan_text
from engine.refusal import Refused
from ledger.contracts import last_issued_period, save_contract
from ledger.history import History, SavedVersion, contract_history
from ledger.models import Contract
from rules.diagnostics import Diagnostic, Span, error, ordered

blueprint = Blueprint("contracts", __name__)

EDITORS = ("deal_desk",)
READERS = ("deal_desk", "finance", "admin")
EDITOR = "portal editor"          # the audit entry's `source` of a save here (the command line's: its file)
MAX_SOURCE = 512 * 1024          # characters: ten times the 500-site benchmark contract


class VersionForm(FlaskForm):
    source = TextAreaField("Contract text", validators=[DataRequired("The contract text is empty."),
                                                        Length(max=MAX_SOURCE)])
    comment = StringField("Comment", validators=[DataRequired("Say what changed and why: the history shows it."),
                                                 Length(max=500)],
                          render_kw={"autocomplete": "off", "placeholder": "What changed and why"})
    effective = StringField("Effective from", validators=[Optional(), Length(max=40)],
                            render_kw={"autocomplete": "off", "placeholder": "YYYY-MM", "inputmode": "numeric",
                                       "spellcheck": "false"})
    base = HiddenField()      # the newest version when the text was opened: a save since then is not overwritten unseen


# ---------------------------------------------------------------- checking

def checked(source: str, contract_id: str | None) -> tuple[Compiled, list[Diagnostic]]:
    """The compiler's diagnostics, and what saving this text as `contract_id` (None: a new contract) would refuse.

    Not through store/contracts.py's cache of stored texts: every keystroke's text is new, and would push them out.
    """
    compiled = compile_source(source.encode("utf-8"), contract_id or "new contract")
    return compiled, ordered([*compiled.diagnostics, *_save_problems(compiled, contract_id)])


def _save_problems(compiled: Compiled, contract_id: str | None) -> list[Diagnostic]:
    contract = compiled.contract
    if contract is None:
        return []
    if contract_id is None:
        if db_session().get(Contract, contract.id) is not None:
            return [error("contract-exists", contract.id_span,
                          f"contract '{contract.id}' already exists: open it from Contracts to save a new version")]
        return []
    if contract.id != contract_id:
        return [error("other-contract", contract.id_span,
                      f"this page edits contract '{contract_id}': keep its name (to start another contract, "
                      f"use New contract)")]
    stored = db_session().get(Contract, contract_id)
    if stored is None or compiled.plan is None:
        return []
    terms = compiled.plan.terms
    problems = []
    for key, mine, theirs in (("starts", terms.starts, stored.starts), ("timezone", terms.timezone, stored.timezone),
                              ("currency", terms.money.currency, stored.currency)):
        if mine != theirs:
            header = contract.header(key)
            span = header.value_span if header else contract.id_span
            problems.append(error("kept-term", span, f"a new version must keep the contract's {key} "
                                                     f"({theirs}); start a new contract to change it"))
    return problems


def diagnostic_json(diagnostic: Diagnostic) -> dict:
    span = diagnostic.span
    return {"severity": diagnostic.severity.value, "code": diagnostic.code, "message": diagnostic.message,
            "line": span.line, "column": span.column, "end": {"line": span.end_line, "column": span.end_column}}


def _source_text(raw: str) -> str:
    """A browser sends a textarea's lines ended by CRLF; the stored text (and its SHA-256) keeps LF, as files do."""
    return raw.replace("\r\n", "\n")


@blueprint.post("/contracts/check")
@blueprint.post("/contracts/<customer>/check")
@allow(*EDITORS)
def check(customer: str | None = None):
    started = time.perf_counter()
    if customer is not None and db_session().get(Contract, customer) is None:
        return {"error": f"no contract '{customer}'"}, 404
    source = _source_text(request.form.get("source", ""))
    if len(source) > MAX_SOURCE:
        too_long = error("too-long", _span_of_line(MAX_SOURCE, source),
                         f"the text is longer than {MAX_SOURCE:,} characters; nothing was checked")
        return _answer([too_long], None, None, started)
    compiled, diagnostics = checked(source, customer)
    return _answer(diagnostics, compiled, customer, started)


def _span_of_line(offset: int, source: str) -> Span:
    line = source.count("\n", 0, offset) + 1
    return Span(line, 1, line, 1)


def _answer(diagnostics: list[Diagnostic], compiled: Compiled | None, customer: str | None, started: float):
    errors = sum(d.severity.value == "error" for d in diagnostics)
    plan = compiled.plan if compiled is not None else None
    return {
        "ok": errors == 0,
        "contract": compiled.contract.id if compiled is not None and compiled.contract else customer,
        "errors": errors,
        "warnings": len(diagnostics) - errors,
        "diagnostics": [diagnostic_json(d) for d in diagnostics],
        "plan": plan_text(plan) if plan is not None else None,
        "milliseconds": round((time.perf_counter() - started) * 1000, 1),
    }


# ---------------------------------------------------------------- pages

@dataclass(frozen=True)
class ContractRow:
    id: str
    customer: str
    current: SavedVersion | None      # the version in effect this period
    scheduled: SavedVersion | None    # a later one already saved
    last_saved: SavedVersion
    this_period: Period               # in the contract's time zone, by the portal's clock


def _history(contract_id: str) -> tuple[Contract, History]:
    contract = db_session().get(Contract, contract_id)
    if contract is None:
        abort(404)
    return contract, contract_history(db_session(), contract_id, today=_today(contract))


def _today(contract: Contract) -> dt.date:
    return now().astimezone(ZoneInfo(contract.timezone)).date()


def version_state(version: SavedVersion, this_period: Period) -> str:
    """How the history words a version: in effect, scheduled, or replaced before it took effect."""
    if version.replaced_by:
        return f"for {version.effective}, replaced by version {version.replaced_by} before it took effect"
    if version.effective > this_period:
        return f"scheduled from {version.effective}"
    if version.until:
        return f"in effect {version.effective} to {version.until}"
    return f"in effect from {version.effective}"


def _row(contract: Contract, history: History) -> ContractRow:
    this_period = Period.of(_today(contract))
    live = [v for v in history.versions if v.replaced_by is None]
    current = [v for v in live if v.effective <= this_period]
    later = [v for v in live if v.effective > this_period]
    return ContractRow(contract.id, contract.customer, current[-1] if current else None,
                       later[0] if later else None, history.versions[-1], this_period)


@blueprint.get("/contracts")
@allow(*READERS)
def index():
    if request.args.get("new"):
        if current_user.role not in EDITORS:
            abort(403)
        return _editor_page(VersionForm(data={"source": _skeleton()}), None, None, None)
    contracts = db_session().scalars(select(Contract).order_by(Contract.customer, Contract.id)).all()
    rows = [_row(contract, contract_history(db_session(), contract.id, today=_today(contract)))
            for contract in contracts]
    auditing.record("contract.list", "contract:*", details={"shown": len(rows)})
    db_session().commit()
    return render_template("portal/contracts/index.html", rows=rows, can_edit=current_user.role in EDITORS)


@blueprint.get("/contracts/<customer>")
@allow(*READERS)
def editor(customer: str):
    contract, history = _history(customer)
    number = request.args.get("version", type=int)
    version = next((v for v in history.versions if v.number == number), None) if number else history.versions[-1]
    if version is None:
        abort(404)
    auditing.record("contract.view", contract_resource(contract.id, version.sha256),
                    details={"version": version.number, "effective": str(version.effective)})
    db_session().commit()
    form = VersionForm(data={"source": version.text, "base": history.versions[-1].number})
    return _editor_page(form, contract, history, version)


@blueprint.post("/contracts")
@allow(*EDITORS)
def create():
    return _save(None)


@blueprint.post("/contracts/<customer>/save")
@allow(*EDITORS)
def save(customer: str):
    return _save(customer)


@blueprint.get("/contracts/<customer>/versions")
@allow(*READERS)
def versions(customer: str):
    contract, history = _history(customer)
    auditing.record("contract.history", contract_resource(contract.id), details={"versions": len(history.versions)})
    db_session().commit()
    return render_template("portal/contracts/versions.html", contract=contract, history=history,
                           row=_row(contract, history), versions=list(reversed(history.versions)),
                           compare=whatif_url(contract.id, "compare", "GET"),
                           highlight=request.args.get("version", type=int), can_edit=current_user.role in EDITORS,
                           state=version_state)


# ---------------------------------------------------------------- saving

def _save(customer: str | None):
    contract, history = _history(customer) if customer else (None, None)
    form = VersionForm()
    form.source.data = _source_text(form.source.data or "")
    if not form.validate_on_submit():
        return _editor_page(form, contract, history, None, status=400)
    compiled, diagnostics = checked(form.source.data, customer)
    count = sum(d.severity.value == "error" for d in diagnostics)
    if count:
        form.source.errors.append(f"Not saved: the contract has {count} error{'s' * (count != 1)}; "
                                  f"they are listed beside the text.")
    effective = None
    if customer and form.effective.data and form.effective.data.strip():
        try:
            effective = Period.parse(form.effective.data.strip())
        except ValueError:
            form.effective.errors.append(f"Write the period as YYYY-MM, for example {_next_period(contract)}.")
    newest = history.versions[-1] if history else None
    if newest is not None and form.base.data != str(newest.number):
        form.source.errors.append(
            f"Not saved: {newest.author} saved version {newest.number} at {newest.saved_at:%H:%M} UTC since you "
            f"opened this text{f' ({newest.comment})' if newest.comment else ''}. Your text is kept here: compare "
            f"it with version {newest.number} (History, in another tab), then save again: your text becomes the newest version.")
        form.base.data = str(newest.number)
    if form.source.errors or form.effective.errors:
        return _refused(form, contract, history, (compiled, diagnostics), customer,
                        form.source.errors + form.effective.errors)
    try:
        saved = save_contract(db_session(), compiled, effective=effective, comment=form.comment.data.strip(),
                              author=current_user.email, now=now())
    except Refused as refused:
        db_session().rollback()
        reason = refusal_text(refused.refusal)
        field = form.effective if refused.refusal.field == "effective" else form.source
        field.errors.append(reason)
        return _refused(form, contract, history, (compiled, diagnostics), customer, [reason])
    replaced = saved.same_as if saved.outcome == "replaced" else None
    auditing.record("contract.save", contract_resource(saved.contract_id, saved.sha256), details=audit_details(
        "contract.save", result=saved.outcome, in_effect_from=str(saved.effective), comment=form.comment.data.strip(),
        author=current_user.email, source=EDITOR, replaces=replaced.sha256 if replaced else None))
    db_session().commit()
    saved_history = contract_history(db_session(), saved.contract_id)
    number = saved_history.versions[-1].number
    if saved.outcome == "unchanged":
        flash(f"Nothing saved: the text is the same as the version in effect from {saved.effective}.", "notice")
    elif saved.outcome == "replaced":
        flash(f"Saved version {number}, in effect from {saved.effective}; it replaces the version saved for that "
              f"period on {saved.same_as.saved_at:%Y-%m-%d} (still in the history).", "done")
    else:
        flash(f"Saved version {number}, in effect from {saved.effective}.", "done")
    highlight = None if saved.outcome == "unchanged" else number
    return redirect(url_for("contracts.versions", customer=saved.contract_id, version=highlight))


def _refused(form, contract, history, result, customer, reasons):
    compiled = result[0]
    resource = contract_resource(customer or (compiled.contract.id if compiled.contract else "new"))
    auditing.record("contract.save", resource, outcome=FAILURE, details=audit_details(
        "contract.save", reason=" ".join(reasons), in_effect_from=(form.effective.data or "").strip() or None,
        comment=(form.comment.data or "").strip(), author=current_user.email, source=EDITOR))
    db_session().commit()
    return _editor_page(form, contract, history, None, status=400, result=result)


def _next_period(contract: Contract) -> Period:
    return max(Period.of(_today(contract)).shift(1), Period.of(contract.starts))


# ---------------------------------------------------------------- the editor page

def _editor_page(form: VersionForm, contract: Contract | None, history: History | None,
                 version: SavedVersion | None, status: int = 200, result: tuple | None = None):
    compiled, diagnostics = result or checked(form.source.data or "", contract.id if contract else None)
    editable = current_user.role in EDITORS
    issued = None
    if contract is not None:
        issued = last_issued_period(db_session(), contract.id)
        form.effective.description = (
            f"Empty: from {_next_period(contract)}, the next period boundary. "
            + (f"Invoices are issued up to {issued}, so {issued.shift(1)} is the earliest." if issued else "")
        )
    customer = contract.id if contract else None
    page = render_template(
        "portal/contracts/editor.html", form=form, contract=contract, history=history, version=version,
        newest=history.versions[-1] if history else None, diagnostics=diagnostics,
        errors=sum(d.severity.value == "error" for d in diagnostics),
        plan=plan_text(compiled.plan) if compiled.plan else None, editable=editable,
        check_url=url_for("contracts.check", customer=customer) if customer else url_for("contracts.check"),
        save_url=url_for("contracts.save", customer=customer) if customer else url_for("contracts.create"),
        preview_url=whatif_url(customer, "preview", "POST") if customer else None,
        backtest_url=whatif_url(customer, "backtest", "POST") if customer else None,
        default_preview=str(issued or Period.of(_today(contract))) if contract else "",   # issued: usage to show
        state=version_state, this_period=Period.of(_today(contract)) if contract else None,
    )
    return page, status


def whatif_url(customer: str, what: str, method: str) -> str | None:
    """This contract's what-if page (admin_app/whatif.py) if the app has it and the user's role may use it."""
    path = url_for("contracts.editor", customer=customer) + "/" + what
    try:
        endpoint, _ = current_app.url_map.bind("localhost").match(path, method=method)
    except HTTPException:
        return None
    return path if portal.allowed(endpoint, current_user.role) else None


def _skeleton() -> str:
    """A new contract's starting text: valid, starting on the first day of next month."""
    starts = Period.of(now().date()).shift(1).first_day
    return (
        'contract "new-customer" {\n'
        '    customer "New Customer Ltd"\n'
        "    currency GBP\n"
        f"    starts   {starts.isoformat()}\n"
        '    timezone "Europe/London"\n'
        "\n"
        '    category standard "Standard processing" rate 1.00\n'
        "\n"
        '    site "site-01" "Main site" {\n'
        "    }\n"
        "}\n"
    )
