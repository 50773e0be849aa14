"""A stand-in for the Odoo server, for havsh-tui's integration tests only.

It implements the surface of shared/ODOO-CONTRACT.md (CLI subset, tables, HTTP endpoints,
log format) on real PostgreSQL, with the stdlib and psycopg2 only. See README.md.
"""
