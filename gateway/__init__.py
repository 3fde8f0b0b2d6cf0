"""The national medical-insurance platform's settlement interface over HTTP: a hospital or pharmacy information
system (HIS) built for the platform settles with medledger by changing its URL and key."""
