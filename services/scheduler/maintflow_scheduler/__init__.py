"""The scheduler service: leader election, the tick, the outbox relay and the reconciler."""
