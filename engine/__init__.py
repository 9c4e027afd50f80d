"""The engine: runs compiled evaluation plans over aggregated usage, and the values every layer shares.

    plan.py       the evaluation plan: phases (meter → rate → minimum → cap → total, then account → invoice
                  total) and their steps, in order
    steps.py      the steps every plan has whatever its rules: classify, meter, total
    evaluate.py   the evaluator: walks a plan's steps over one period's usage, carrying caps across periods
    sheet.py      the worksheet of one site for one period: what steps read and write
    lines.py      invoice lines and the registry of their kinds; totals are sums of lines
    account.py    the account phase after every site (its worksheet, the invoice total), versions' commitments
    account_lines.py  the account phase's lines and their kinds (account minimum, cap, commitment)
    late.py       late usage: the difference an issued period's late events make, billed on the next invoice
    usage.py      aggregated usage: what metering hands over
    money.py      exact money: minor units, per-line rounding
    periods.py    billing periods and contract years
    plan_view.py  the plan as a finance reader sees it (`billing plan`)
    refusal.py    one shape for "no": a code, the input it concerns, a message, its parameters

Imports nothing of the project. Knows nothing of the parser (dsl/, lark), of files,
databases or HTTP: a compiled step carries its own runner, so the evaluator runs a
plan without loading the language.
"""
