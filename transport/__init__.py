"""The Kafka connection, shared by the service that consumes the event topic (consumers) and the gateway that
publishes to it: settings from the environment, the broker client, the topics, and the partition of a region."""
