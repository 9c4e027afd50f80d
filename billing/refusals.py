"""A refusal (engine/refusal.py) as the command line says it: the option at fault, the message, the command to run.

    refusal_text(Refusal("draft-outdated", "the usage … changed since the draft was made", action="close",
                         params={"customer": "acme-health", "period": "2026-05"}))
    # "the usage … changed since the draft was made; run `billing close --customer acme-health --period 2026-05`"

The portal words the same refusals its own way (admin_app/refusals.py).
"""

from __future__ import annotations

from engine.refusal import Refusal

# Each action a refusal may name, as the command that takes it (from the refusal's params).
COMMANDS = {
    "close": "run `billing close --customer {customer} --period {period}`",
    "approve": "run `billing approve --customer {customer} --period {period}` first",
    "void": "void it to correct it (`billing void --number {number} --reason TEXT`)",
    "credit": "credit what remains instead (`billing credit --number {number} --reason TEXT`)",
    "reconcile": "see `billing reconcile --customer {customer} --period {period}`, resolve them and run "
                 "`billing close --customer {customer} --period {period}` again, or have finance record why they "
                 "may stand (`billing reconcile --customer {customer} --period {period} --explain TEXT`)",
    "save-contract": "save it with `billing contract save FILE`",
    "omit-effective": "save it without --effective",
}
# The refusal's field, as the option it was given by: the message then starts with the option and its value.
OPTIONS = {"effective": "--effective"}


def refusal_text(refusal: Refusal) -> str:
    text = refusal.message
    option = OPTIONS.get(refusal.field or "")
    if option and refusal.field in refusal.params:
        text = f"{option} {refusal.params[refusal.field]}: {text}"
    if refusal.action is not None:
        text = f"{text}; {COMMANDS[refusal.action].format_map(refusal.params)}"
    return text
