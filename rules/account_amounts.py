"""What the account block's rules (`minimum`, `cap`, `commit` in `account { … }`) share: their checks on an amount.

An account amount is money the whole contract is billed or counted against, so
more decimal places than the currency has is an error (spec §5), said with what
it would round to.
"""

from __future__ import annotations

from typing import Iterable

from rules.diagnostics import Diagnostic
from rules.pricing import check_not_negative
from rules.scoped import check_currency_places
from rules.written import Amount


def check_account_amount(amount: Amount, ctx, what: str) -> Iterable[Diagnostic]:
    yield from check_not_negative(amount, f"the account {what}")
    yield from check_currency_places(amount, ctx, f"account {what}", code="account-amount-places")
