"""Configuration: the environment (test, us-prod, uk-prod) and what it says (environment.py, environments/*.toml).

The one place configuration is read. Services are handed the settings they need;
nothing below the command line and the web app reads the process environment itself.
Imports nothing of the project.
"""
