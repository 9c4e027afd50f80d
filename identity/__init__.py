"""Who may act: portal users and their roles (accounts.py), signing in (signin.py), API keys (apikeys.py).

Records what it does in the audit log; knows nothing of Flask or of invoices.
"""
