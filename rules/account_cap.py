"""Account cap: a limit on what the whole account is billed in a contract year, pooled over its sites (§4.9).

    account {
        cap 40_000.00 yearly
    }

If 39,000.00 was counted earlier in the contract year and this period's site
totals and account minimum come to 3,100.00, the reduction is
min(3,100.00, max(0, 39,000.00 + 3,100.00 − 40,000.00)) = 2,100.00: a line
`account_cap  limit 40,000.00  counted before 39,000.00  amount −2,100.00`.
There is one account cap: its count carries across contract versions within the
year, and a period without an account cap in force counts nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from engine.account_lines import AccountCapLine
from engine.plan import Phase, Step
from rules.account_amounts import check_account_amount
from rules.diagnostics import Span
from rules.primitive import Primitive
from rules.written import Amount

ZERO = Decimal(0)


@dataclass(frozen=True)
class AccountCap:
    amount: Amount
    span: Span
    primitive = "account_cap"


@dataclass(frozen=True)
class AccountCapParams:
    limit: Decimal

    def as_dict(self) -> dict:
        return {"limit": str(self.limit), "counted_per": "account and contract year"}


def check(node: AccountCap, ctx) -> Iterable:
    yield from check_account_amount(node.amount, ctx, "cap")


def steps(node: AccountCap, categories, ctx) -> Iterable[Step]:
    yield Step(
        Phase.ACCOUNT,
        "account_cap",
        f"limit the site totals and the account minimum to {node.amount.value} per contract year, over all sites",
        reads=("site totals", "account_minimum", "account cap count"),
        writes=("account_cap", "account cap count"),
        params=AccountCapParams(node.amount.value),
        source=ctx.source(node),
        stage=1,
    )


def run(step: Step, sheet) -> None:
    limit = sheet.money.round(step.params.limit)
    now = sheet.site_totals + sheet.amount("account_minimum")
    before = sheet.ledger.account.cap
    reduction = max(ZERO, min(now, max(ZERO, before + now - limit)))
    sheet.ledger.account = dataclasses.replace(sheet.ledger.account, cap=before + now - reduction)
    if reduction:
        sheet.lines.append(AccountCapLine(
            limit, before, now, -reduction,
            f"account annual cap {limit}; {before} counted before this period, {now} now; reduction {reduction}",
            step.source,
        ))


PRIMITIVES = (
    Primitive(
        name="account_cap",
        kind="account_cap",
        build=lambda children, span: AccountCap(children[0], span),
        check=check,
        steps=steps,
        run=run,
        cap_limit=lambda node: node.amount.value,
    ),
)
