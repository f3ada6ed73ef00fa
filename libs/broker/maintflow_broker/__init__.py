"""maintflow's Dramatiq broker, for every process that talks to it: built with one middleware
list (`brokers`), fast bulk enqueue and the outbox's messages (`enqueue`), and what is read of
the queues — depth, the oldest waiting message, the dead-worker sweep (`queues`). Imported by the
workers, the scheduler and the API; it imports only maintflow_core, never a service."""
