"""Rule primitives: one module per kind of rule, found through registry.py."""
