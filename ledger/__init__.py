"""OASIS → VTID ledger writer.

Importing the package does no work: clients and connections are created on first use.
"""

__version__ = "2025.12.14"
"""The writer's version (the date of its newest migration); the fold's rules carry their own
(`ledger_rules_version()` in the database)."""
