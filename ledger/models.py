"""The books: contracts and their versions, and the invoices computed from them.

    contracts ─< contract_versions          (versioned by sqlalchemy-continuum)
    invoices   draft, approved and issued invoices with what they counted (issued ones frozen)
    invoice_pdfs, invoice_voids             the issued PDF, voids (lifecycle/transitions.py)
    customer_profiles                       who an invoice bills: the buyer's legal details (versioned)
    fx_rates                                GBP per unit of a currency on a day, as finance recorded it
    credit_grants ─< grant_draws            credits finance granted; what issued invoices drew from them
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    exists,
    inspect,
    text,
)
from sqlalchemy.orm import Mapped, configure_mappers, mapped_column, relationship

from engine.periods import Period
from storage.base import Base, FrozenRecord, RowId, make_append_only


class Contract(Base):
    """A customer's contract; what every version must keep (id, start, time zone, currency)."""

    __tablename__ = "contracts"
    __versioned__ = {}

    id: Mapped[str] = mapped_column(primary_key=True)
    customer: Mapped[str]                      # the display name, as the latest version writes it
    timezone: Mapped[str]
    starts: Mapped[dt.date]
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime]

    versions: Mapped[list[ContractVersion]] = relationship(
        back_populates="contract", order_by="ContractVersion.effective"
    )


class ContractVersion(Base):
    """The contract text in effect from `effective` on; saving again for the same period replaces it."""

    __tablename__ = "contract_versions"
    __versioned__ = {}
    __table_args__ = (UniqueConstraint("contract_id", "effective", name="contract_versions_period"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    effective: Mapped[Period]
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str]
    saved_at: Mapped[dt.datetime]
    comment: Mapped[str] = mapped_column(Text, default="")

    contract: Mapped[Contract] = relationship(back_populates="versions")


INVOICE_STATUSES = ("draft", "approved", "issued", "void")


class Invoice(Base):
    """One period's invoice of a contract. An issued one is frozen: its document and what its caps counted."""

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(f"status IN {INVOICE_STATUSES}", name="invoices_status"),
        # One draft or approved invoice per customer and period. An issued one is never changed, so a voided
        # one keeps status 'issued' (invoice_voids says it is void); store/lifecycle.py allows one in force.
        Index(
            "invoices_one_open", "customer", "period", unique=True,
            postgresql_where=text("status IN ('draft', 'approved')"),
            sqlite_where=text("status IN ('draft', 'approved')"),
        ),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    customer: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    period: Mapped[Period]
    status: Mapped[str] = mapped_column(String(10))
    document: Mapped[dict] = mapped_column(JSON)
    contract_sha: Mapped[str] = mapped_column(String(64))
    cap_counts_before: Mapped[list] = mapped_column(JSON)   # [[site, scope, "decimal"], …] at the period's start
    cap_counts: Mapped[list] = mapped_column(JSON)          # … and after it
    usage_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    issued_at: Mapped[dt.datetime | None]
    # The lifecycle (store/lifecycle.py): who approved and issued it, its number, the voided invoice it replaces.
    approved_at: Mapped[dt.datetime | None]
    approved_by: Mapped[str | None]
    issued_by: Mapped[str | None]
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))


class InvoicePdf(Base):
    """The PDF an invoice was issued with, and its SHA-256; never changed or deleted."""

    __tablename__ = "invoice_pdfs"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))


class InvoiceVoid(Base):
    """An issued invoice's void: who, when, why. The invoice row itself is not touched."""

    __tablename__ = "invoice_voids"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    voided_at: Mapped[dt.datetime]
    voided_by: Mapped[str]
    reason: Mapped[str] = mapped_column(Text)


def in_force():
    """The condition of an issued invoice that was not voided: what caps, lateness and numbering count."""
    return (Invoice.status == "issued") & ~exists().where(InvoiceVoid.invoice_id == Invoice.id)


@event.listens_for(Invoice, "before_update")
@event.listens_for(Invoice, "before_delete")
def _issued_invoice_is_frozen(mapper, connection, target: Invoice) -> None:
    history = inspect(target).attrs.status.history
    if (history.deleted[0] if history.deleted else target.status) == "issued":
        raise FrozenRecord(f"invoice {target.number or target.id} of '{target.customer}' for {target.period} "
                           "is issued: it cannot be changed or deleted (void it and issue a new one)")


make_append_only(InvoicePdf, InvoiceVoid)


TAX_TREATMENTS = ("uk_standard", "reverse_charge", "exempt", "none")


class CustomerProfile(Base):
    """A customer's billing profile (ledger/profiles.py): the buyer an invoice names, and how it is taxed.
    Versioned by sqlalchemy-continuum like a contract, so every earlier state and who saved it is kept."""

    __tablename__ = "customer_profiles"
    __versioned__ = {}
    __table_args__ = (CheckConstraint(f"tax_treatment IN {TAX_TREATMENTS}", name="customer_profiles_treatment"),)

    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[list] = mapped_column(JSON, default=list)     # the lines of the postal address, in order
    tax_id: Mapped[str] = mapped_column(String(32), default="")
    tax_treatment: Mapped[str] = mapped_column(String(16), default="none")
    exempt_reason: Mapped[str] = mapped_column(Text, default="")
    purchase_order: Mapped[str] = mapped_column(Text, default="")
    terms_days: Mapped[int | None]                                 # None: the seller's default terms
    revision: Mapped[int]                                          # 1, 2, …: a draft names the one it used
    saved_by: Mapped[str]
    saved_at: Mapped[dt.datetime]

configure_mappers()


class FxRate(Base):
    """How many GBP one unit of `currency` is worth on `on` (ledger/fx.py), as finance recorded it: what a
    non-GBP invoice with UK VAT states its VAT in GBP at. Recording the day again replaces it (audited)."""

    __tablename__ = "fx_rates"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    on: Mapped[dt.date] = mapped_column(primary_key=True)
    gbp: Mapped[Decimal]
    recorded_by: Mapped[str]
    recorded_at: Mapped[dt.datetime]


class CreditGrant(Base):
    """A credit finance granted a customer (ledger/grants.py): a reduction of price that invoices of the periods
    it allows draw on, by priority, then expiry, then age. Revoking it keeps the row."""

    __tablename__ = "credit_grants"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    customer: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    amount: Mapped[Decimal]
    from_period: Mapped[Period]
    expires: Mapped[dt.date | None]            # its last valid day, included
    priority: Mapped[int]
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str]
    granted_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None]
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class GrantDraw(Base):
    """What an issued invoice drew from a grant, written when it is issued; a void gives it back (a draw counts
    only while its invoice is in force)."""

    __tablename__ = "grant_draws"

    grant_id: Mapped[int] = mapped_column(ForeignKey("credit_grants.id"), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    amount: Mapped[Decimal]
