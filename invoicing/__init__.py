"""Invoicing: what the customer sees. One invoice object; JSON, text (and later PDF, CSV) render it."""
