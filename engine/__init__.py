"""Runs evaluation plans over aggregated usage. No files, no web, no database."""
