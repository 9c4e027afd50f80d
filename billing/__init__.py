"""The `billing` command: the top of the tree, one entry point beside admin_app's create_app.

    cli.py        the command: parses the arguments, runs a command of billing/commands/, maps errors to exit codes
    commands/     one module per area (file mode, database, lifecycle, reconcile, web, portal, credit)
    contracts.py  contract versions loaded from files (`FILE@YYYY-MM`)
    output.py     exit codes and output helpers
    progress.py   a progress bar on standard error
    refusals.py   a refusal as the command line says it
    demo.py       the demonstration database behind `billing demo`

Reads the settings (settings/environment.py) and hands each service what it needs.
Nothing imports it: admin_app must not know the command line.
"""
