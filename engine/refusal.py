"""One shape for "no": a refusal with a stable code, the input it concerns, a message and its parameters.

    refusal = Refusal("not-approved", "UK-2026-000042 is draft: only an approved invoice can be issued",
                      action="approve", params={"customer": "acme-health", "period": "2026-05"})
    raise Refused(refusal)          # where a step must abort; nothing was changed
    return refusal                  # where the caller decides (a what-if preview, a sign-in step)

Every layer that says no (the lifecycle's steps and gates, credit notes, contract
saves, what-if previews and backtests, user administration, sign-in) says it with
this value, returned or raised inside `Refused`. The message is for people and
names no interface: neither `billing close` nor a button. A refusal that has a
next step names it in `action` (one of ACTIONS), with what the step needs in
`params`; each interface words it: the command line as the command to run
(billing/refusals.py), the portal as what to do there (admin_app/refusals.py).
`field` names the input at fault (a form field or option: "reason", "effective",
"source", …), so a form shows the message beside it and keeps what was typed.
The code is stable: tests, the audit log and callers choose by it, not by wording.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Mapping

# The next steps a refusal may name; every interface words each one (tested for both).
ACTIONS = (
    "close",            # make or recompute the period's draft: customer, period
    "approve",          # approve the draft: customer, period
    "void",             # void the issued invoice: number
    "credit",           # credit what remains of the issued invoice: number
    "reconcile",        # resolve or explain the period's reconciliation: customer, period
    "save-contract",    # save the contract's first version: customer
    "omit-effective",   # save without choosing the period the version takes effect from
)


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why nothing was done: `code` to choose by, `message` for people, `field` the input at fault (None: the
    request as a whole), `params` the values the message and the action speak of, `diagnostics` the compiler's
    findings when the refusal is about a contract text that does not compile."""

    code: str
    message: str
    field: str | None = None
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    action: str | None = None
    diagnostics: tuple = ()

    def __post_init__(self) -> None:
        if self.action is not None and self.action not in ACTIONS:
            raise ValueError(f"refusal {self.code}: unknown action {self.action!r} (one of {', '.join(ACTIONS)})")
        object.__setattr__(self, "params", MappingProxyType({k: str(v) for k, v in self.params.items()}))

    def __str__(self) -> str:
        return self.message

    def prefixed(self, prefix: str) -> "Refusal":
        """The same refusal, its message said of something: `prefixed("UK-2026-000042 cannot be approved")`."""
        return dataclasses.replace(self, message=f"{prefix}: {self.message}")


class Refused(Exception):
    """A step refused with `refusal`; nothing was changed. `str()` is the refusal's message."""

    def __init__(self, refusal: Refusal):
        super().__init__(refusal.message)
        self.refusal = refusal
