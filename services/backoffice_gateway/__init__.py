"""The back-office gateway: a Flask application that turns the ledger's, ingest's and drift's
gRPC reads and operations into pages and a JSON API, for operators it authenticates itself.

It owns only operators, their sessions and API tokens, login attempts and the audit log
(schema ``gateway``); every billing figure comes over gRPC.
"""
