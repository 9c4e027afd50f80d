"""The pricing language: text in, a checked contract and its evaluation plan out.

    grammar.lark --parse--> syntax tree --checks--> diagnostics
                                       --compile--> engine.plan.Plan
"""
