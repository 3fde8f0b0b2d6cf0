"""Read models derived from the ledger alone. Each can be dropped and rebuilt by replaying the ledger
(`medledger projections rebuild`); `medledger replay --verify` rebuilds them aside and compares."""
