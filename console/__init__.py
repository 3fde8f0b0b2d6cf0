"""The audit and fund console: what auditors and fund managers look at, in the browser (`medledger console`)."""
