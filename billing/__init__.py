"""The `billing` command and the services it shares with the web app."""
