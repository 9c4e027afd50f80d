"""Configuration: the environment (test, us-prod, uk-prod) and what it says (environment.py, environments/*.toml).

The one place that reads the process environment (BILLING_ENV, BILLING_DATABASE_URL,
BILLING_SECRET_KEY). Only the entry points (the `billing` command, admin_app's
create_app) call it; they hand each service the values it needs as arguments.
Imports nothing of the project, and knows nothing of what the values are used for.
"""
