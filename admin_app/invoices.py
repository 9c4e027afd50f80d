"""Invoices, for finance (every invoice) and customer finance (their customer's issued invoices only).

    GET /invoices          the invoices the user may see, newest period first
    GET /invoices/<id>     one of them; 404 for any other, whether it exists or not

The customer scope is a condition of the query (`visible_invoices`), never a
filter in a template: a customer_finance user's query cannot return another
customer's row. Every list and every view is recorded in the audit log, and so
is a refused view (outcome `denied` when the invoice exists but is not theirs).
A voided invoice stays visible to whoever saw it issued, marked void.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_login import current_user
from sqlalchemy import Select, select

from admin_app import auditing
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.sessions import SignedIn
from store.accounts import CUSTOMER_ROLE
from store.audit import DENIED, FAILURE, invoice_resource
from store.models import Invoice, InvoiceVoid

blueprint = Blueprint("invoices", __name__)


def visible_invoices(user: SignedIn) -> Select:
    query = select(Invoice)
    if user.role == CUSTOMER_ROLE:
        query = query.where(Invoice.customer == user.customer, Invoice.status == "issued")
    return query


@blueprint.get("/invoices")
@allow("finance", "customer_finance")
def index():
    query = visible_invoices(current_user).order_by(Invoice.period.desc(), Invoice.customer, Invoice.id)
    invoices = db_session().scalars(query).all()
    auditing.record("invoice.list", "invoice:" + (current_user.customer or "*"), details={"shown": len(invoices)})
    db_session().commit()
    return render_template("portal/invoices.html", invoices=invoices, voided=_voided(invoices))


@blueprint.get("/invoices/<int:invoice_id>")
@allow("finance", "customer_finance")
def show(invoice_id: int):
    invoice = db_session().scalar(visible_invoices(current_user).where(Invoice.id == invoice_id))
    if invoice is None:
        exists = db_session().get(Invoice, invoice_id)
        resource = invoice_resource(exists.customer, exists.period, exists.id) if exists else f"invoice:#{invoice_id}"
        auditing.record("invoice.view", resource, outcome=DENIED if exists else FAILURE,
                        details={"reason": "not visible to this user" if exists else "no such invoice"})
        db_session().commit()
        abort(404)
    auditing.record("invoice.view", invoice_resource(invoice.customer, invoice.period, invoice.id),
                    details={"status": invoice.status})
    db_session().commit()
    return render_template("portal/invoice.html", invoice=invoice, document=invoice.document,
                           voided=_voided([invoice]))


def _voided(invoices) -> set[int]:
    """The ids of those that were issued and then voided (the row keeps status 'issued'; a void is its own row)."""
    ids = [invoice.id for invoice in invoices if invoice.status == "issued"]
    return set(db_session().scalars(select(InvoiceVoid.invoice_id).where(InvoiceVoid.invoice_id.in_(ids))))
