"""The pricing language: text in, a checked contract and its evaluation plan out.

    grammar.lark --parse--> syntax tree --checks--> diagnostics
                                       --compile--> engine.plan.Plan

    parse.py    text to syntax tree (the Lark transformer only builds nodes)
    syntax.py   the syntax tree: small frozen nodes, each with its span
    checks.py   the compiler's checks, in the order of CHECKS
    resolve.py  how defaults and a site's own rules combine
    compile.py  parse, check, then lay out each site's steps from the rule primitives (rules/)

Knows nothing of usage, money amounts billed, storage or the web.
"""
