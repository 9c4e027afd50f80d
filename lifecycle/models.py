"""The lifecycle's own records: invoice numbering and credit notes.

    invoice_counters  the last number issued per environment and year
    credit_notes      credit notes against issued invoices, with their PDFs (lifecycle/credit_notes.py)
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, RowId, make_append_only


class InvoiceCounter(Base):
    """The last invoice number issued per environment and year; locked by the issuing transaction."""

    __tablename__ = "invoice_counters"

    environment: Mapped[str] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(BigInteger)


class CreditNote(Base):
    """A credit note against an issued invoice (store/credit_notes.py): its own number, the amount credited per
    site, why, who, when, and its PDF with the SHA-256; never changed or deleted (migration 0006, and the ORM)."""

    __tablename__ = "credit_notes"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    customer: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    lines: Mapped[list] = mapped_column(JSON)             # [{"site"|"account", "name", "amount"}]: the net credited
    tax: Mapped[dict | None] = mapped_column(JSON)        # the tax credited (None: the invoice has no tax section)
    total: Mapped[Decimal]                                # the lines plus the tax's amount
    issued_at: Mapped[dt.datetime]
    issued_by: Mapped[str]
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))


make_append_only(CreditNote)
