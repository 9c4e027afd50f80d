"""The `billing` command: the top of the tree, one entry point beside admin_app's create_app.

    cli.py        the command: parses the arguments, runs a command of billing/commands/, maps errors to exit codes
    command_log.py  one JSON log line per command (where the environment's log goes)
    commands/     one module per area (file mode, database, lifecycle, reconcile, web, portal, credit, customer,
                  fx, grant)
    contracts.py  contract versions loaded from files (`FILE@YYYY-MM`)
    output.py     exit codes and output helpers
    progress.py   a progress bar on standard error
    refusals.py   a refusal as the command line says it
    serving.py    what `billing serve` checks before it serves, and its metrics listener
    demo.py       the demonstration database behind `billing demo`

Reads the settings (settings/environment.py) and hands each service what it needs.
Nothing imports it: admin_app must not know the command line.
"""
