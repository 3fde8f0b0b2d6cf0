"""The PostgreSQL side of the ledger: server, schema, migrations and connections."""
