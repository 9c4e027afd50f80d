"""What-if pricing in the portal: preview a draft's invoice, compare two versions, backtest a draft.

    POST /contracts/<customer>/preview            source, period → an HTML fragment for the editor (#preview):
                                                  the invoice per site with lines and totals, or why not
    GET  /contracts/<customer>/compare?a=1&b=2&period=2026-05
                                                  the text diff of versions a and b and the invoice difference
                                                  per site and kind (default: the two newest, the last issued period)
    GET  /contracts/<customer>/backtest           the backtest form on the newest version's text
    POST /contracts/<customer>/backtest           source, periods → per closed period and site (and the account
                                                  lines): issued, draft, difference, with totals; from there
                                                  "Save this version" posts the draft to the editor's own save
                                                  route (deal desk), and "Back to editing" posts it here:
    POST /contracts/<customer>/draft              source, base → the editor page holding that text (unsaved)

The deal desk and finance may use all three (they compute, they save nothing;
admin and customer finance may not: docs/portal-whatif.md). The computations
are store/whatif.py's; a refused request shows again what was typed, with the
reason beside the field. Every preview, comparison and backtest is in the audit
log, refused ones too, and so is opening the backtest form (it shows a
contract's text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from flask import Blueprint, abort, render_template, request
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, StringField, TextAreaField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    ValidationError,
)

from admin_app import auditing
from admin_app.access import allow
from admin_app.contracts import EDITORS, VersionForm
from admin_app.contracts import _editor_page as editor_page
from admin_app.contracts import _history as contracts_history
from admin_app.database import db_session
from admin_app.refusals import beside_field, sentence
from audit.log import FAILURE, contract_resource
from engine.periods import Period
from engine.refusal import Refusal
from ledger.contracts import last_issued_period
from ledger.history import SavedVersion
from ledger.models import Contract
from review import whatif

blueprint = Blueprint("whatif", __name__)

WHATIF_ROLES = ("deal_desk", "finance")
MAX_SOURCE = 512 * 1024


def valid_period(form, field) -> None:
    try:
        Period.parse((field.data or "").strip())
    except ValueError as exc:
        raise ValidationError(sentence(str(exc))) from exc


class PreviewForm(FlaskForm):
    source = TextAreaField("Contract text", validators=[DataRequired("The contract text is empty."),
                                                        Length(max=MAX_SOURCE)])
    period = StringField("Period", validators=[DataRequired("Give the period to preview (YYYY-MM)."), valid_period])


class BacktestForm(FlaskForm):
    source = TextAreaField("Draft contract", validators=[DataRequired("The contract text is empty."),
                                                         Length(max=MAX_SOURCE)],
                           render_kw={"spellcheck": "false", "autocapitalize": "off", "autocomplete": "off",
                                      "wrap": "off", "rows": 22})
    periods = IntegerField("Closed periods", default=whatif.DEFAULT_PERIODS,
                           validators=[InputRequired("Give how many closed periods to run (1 to 36)."),
                                       NumberRange(1, whatif.MAX_PERIODS, "Choose between 1 and 36 periods.")],
                           description="The newest periods with an issued invoice in force.",
                           render_kw={"min": 1, "max": whatif.MAX_PERIODS, "inputmode": "numeric"})
    base = HiddenField()    # the newest version when the text was opened: the editor's save checks it


class DraftForm(FlaskForm):
    source = TextAreaField("Contract text", validators=[DataRequired("The contract text is empty."),
                                                        Length(max=MAX_SOURCE)])
    base = HiddenField()


class CompareForm(FlaskForm):
    class Meta:
        csrf = False     # a GET that changes nothing

    a = StringField("Version a", validators=[DataRequired("Choose version a.")])
    b = StringField("Version b", validators=[DataRequired("Choose version b.")])
    period = StringField("Period", validators=[DataRequired("Give the period (YYYY-MM)."), valid_period],
                         render_kw={"placeholder": "YYYY-MM", "inputmode": "numeric", "maxlength": 7})


def _contract(customer: str, action: str) -> Contract:
    """The contract, or 404 (recorded) when there is none by that name."""
    contract = db_session().get(Contract, customer)
    if contract is None:
        auditing.record(action, contract_resource(customer), outcome=FAILURE, details={"reason": "no such contract"})
        db_session().commit()
        abort(404)
    return contract


def _refusal_details(refusal: Refusal) -> dict:
    return {"code": refusal.code, "field": refusal.field, "reason": refusal.message,
            "diagnostics": len(refusal.diagnostics)}


def _form_errors(form: FlaskForm) -> dict:
    return {"fields": {name: list(errors) for name, errors in form.errors.items()}}


@blueprint.app_template_filter("whatif_sign")
def sign_class(amount) -> str:
    """The class of a difference: more (the draft charges more), less, or same."""
    value = Decimal(amount)
    return "more" if value > 0 else "less" if value < 0 else "same"


# ---------------------------------------------------------------- preview

@blueprint.post("/contracts/<customer>/preview")
@allow(*WHATIF_ROLES)
def preview(customer: str):
    contract = _contract(customer, "contract.preview")
    form = PreviewForm()
    if not form.validate():
        auditing.record("contract.preview", contract_resource(customer), outcome=FAILURE, details=_form_errors(form))
        db_session().commit()
        return render_template("portal/whatif/_preview.html", contract=contract, form=form, shown=None)
    period = Period.parse(form.period.data.strip())
    shown = whatif.preview(db_session(), customer, form.source.data, period)
    if isinstance(shown, Refusal):
        auditing.record("contract.preview", contract_resource(customer), outcome=FAILURE,
                        details={"period": str(period), **_refusal_details(shown)})
        db_session().commit()
        return render_template("portal/whatif/_preview.html", contract=contract, form=form, shown=None,
                               refusal=shown)
    in_effect = whatif.in_effect_total(db_session(), customer, period)
    auditing.record("contract.preview", contract_resource(customer, shown.invoice.contract_version),
                    details={"period": str(period), "total": shown.document["totals"]["total"]})
    db_session().commit()
    return render_template("portal/whatif/_preview.html", contract=contract, form=form, shown=shown,
                           in_effect=in_effect, period=period)


# ---------------------------------------------------------------- compare

@dataclass(frozen=True)
class DiffRow:
    kind: str              # gap (lines left out between two changes), context, added, removed
    old: int | None        # line number in version a
    new: int | None        # line number in version b
    text: str


HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def diff_rows(lines: list[str], old_name: str = "version a") -> list[DiffRow]:
    """The unified diff (store/history.py `text_diff`) for people: each line with its number in version a and in
    version b, the unchanged stretches between changes as a gap row; none of the ---/+++/@@ headers."""
    rows, old, new = [], 0, 0
    for line in lines:
        if line.startswith(("---", "+++")) and old == new == 0:
            continue
        if line.startswith("@@"):
            match = HUNK.match(line)
            start_old, start_new = int(match.group(1)), int(match.group(2))
            first = old or 1
            if start_old > first:
                shown = f"line {first}" if start_old - 1 == first else f"lines {first}–{start_old - 1}"
                rows.append(DiffRow("gap", None, None, f"{shown} of {old_name} unchanged"))
            old, new = start_old, start_new
        elif line.startswith("+"):
            rows.append(DiffRow("added", None, new, line[1:]))
            new += 1
        elif line.startswith("-"):
            rows.append(DiffRow("removed", old, None, line[1:]))
            old += 1
        else:
            rows.append(DiffRow("context", old, new, line[1:]))
            old, new = old + 1, new + 1
    return rows


def _default_pair(versions: tuple[SavedVersion, ...]) -> tuple[int, int]:
    newest = versions[-1].number
    return (newest - 1 if newest > 1 else newest), newest


def _default_period(contract: Contract) -> Period:
    """The last issued period, else the contract's first."""
    return last_issued_period(db_session(), contract.id) or Period.of(contract.starts)


@blueprint.get("/contracts/<customer>/compare")
@allow(*WHATIF_ROLES)
def compare(customer: str):
    contract = _contract(customer, "contract.compare")
    versions = whatif.saved_versions(db_session(), customer)
    a, b = _default_pair(versions)
    form = CompareForm(request.args, data={"a": str(a), "b": str(b), "period": str(_default_period(contract))})
    compared = None
    if form.validate():
        numbers = {}
        for name in ("a", "b"):
            field = getattr(form, name)
            if not field.data.strip().isdigit():
                field.errors.append(f"Choose a version number (1 to {versions[-1].number}).")
            else:
                numbers[name] = int(field.data)
        if len(numbers) == 2:
            compared = whatif.compare_versions(db_session(), customer, numbers["a"], numbers["b"],
                                               Period.parse(form.period.data.strip()))
            if isinstance(compared, Refusal):
                beside_field(form, compared)
                compared = None
    if compared is None:
        auditing.record("contract.compare", contract_resource(customer), outcome=FAILURE, details=_form_errors(form))
    else:
        refusal = compared.refusal
        details = {"a": compared.a.number, "b": compared.b.number, "period": str(compared.period)}
        if refusal is not None:
            details["refused"] = refusal.message
        auditing.record("contract.compare", contract_resource(customer), details=details)
    db_session().commit()
    rows = diff_rows(compared.diff, f"version {compared.a.number}") if compared else []
    return render_template("portal/whatif/compare.html", contract=contract, form=form, versions=versions,
                           compared=compared, rows=rows), 400 if form.errors else 200


# ---------------------------------------------------------------- backtest

@blueprint.route("/contracts/<customer>/backtest", methods=["GET", "POST"])
@allow(*WHATIF_ROLES)
def backtest(customer: str):
    contract = _contract(customer, "contract.backtest")
    if request.method == "GET":
        newest = whatif.saved_versions(db_session(), customer)[-1]
        form = BacktestForm(data={"source": newest.text, "periods": whatif.DEFAULT_PERIODS,
                                  "base": str(newest.number)})
        auditing.record("contract.view", contract_resource(customer, newest.sha256),
                        details={"page": "backtest", "version": newest.number})
        db_session().commit()
        return _backtest_page(contract, form, None, None)
    form = BacktestForm()
    if not form.base.data:     # from the editor: the text was opened on the newest version
        form.base.data = str(whatif.saved_versions(db_session(), customer)[-1].number)
    if not form.validate():
        auditing.record("contract.backtest", contract_resource(customer), outcome=FAILURE, details=_form_errors(form))
        db_session().commit()
        return _backtest_page(contract, form, None, None)
    tested = whatif.backtest(db_session(), customer, form.source.data, form.periods.data)
    if isinstance(tested, Refusal):
        beside_field(form, tested)
        auditing.record("contract.backtest", contract_resource(customer), outcome=FAILURE,
                        details=_refusal_details(tested))
        db_session().commit()
        return _backtest_page(contract, form, None, tested)
    issued, draft, difference = tested.totals
    auditing.record("contract.backtest", contract_resource(customer, tested.draft_version),
                    details={"periods": [str(p.period) for p in tested.periods], "issued": str(issued),
                             "draft": str(draft), "difference": str(difference)})
    db_session().commit()
    return _backtest_page(contract, form, tested, None)


def _backtest_page(contract: Contract, form: BacktestForm, tested, refusal):
    save = SaveForm(data={"source": form.source.data, "base": form.base.data})
    return render_template("portal/whatif/backtest.html", contract=contract, form=form, tested=tested,
                           refusal=refusal, save=save, can_save=current_user.role in EDITORS,
                           account_row=whatif.ACCOUNT_ROW)


class SaveForm(FlaskForm):
    """What the editor's save route (admin_app/contracts.py `save`) reads: the draft as it was backtested."""

    source = HiddenField()
    base = HiddenField()
    comment = StringField("Comment", validators=[DataRequired()],
                          render_kw={"autocomplete": "off", "placeholder": "What changed and why"})
    effective = StringField("Effective from", render_kw={"autocomplete": "off", "placeholder": "YYYY-MM",
                                                         "inputmode": "numeric", "spellcheck": "false"})


# ---------------------------------------------------------------- back to editing

@blueprint.post("/contracts/<customer>/draft")
@allow(*WHATIF_ROLES)
def edit_draft(customer: str):
    """The editor holding the posted text, unsaved: what "Back to editing" on the backtest page shows. It shows
    only what the user sent; its opening is recorded as the editor's is."""
    _contract(customer, "contract.view")
    form = DraftForm()
    if not form.validate():
        abort(400)
    contract, history = contracts_history(customer)
    editor_form = VersionForm(data={"source": form.source.data.replace("\r\n", "\n"),
                                    "base": form.base.data or str(history.versions[-1].number)})
    auditing.record("contract.view", contract_resource(customer),
                    details={"page": "editor", "draft": True, "from": "backtest"})
    db_session().commit()
    return editor_page(editor_form, contract, history, None)
