"""Metering: what happened. Reads usage events, deduplicates them, sums them per day, site and category."""
