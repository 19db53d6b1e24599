"""OASIS → VTID ledger writer.

Importing the package does no work: clients and connections are created on first use.
"""
