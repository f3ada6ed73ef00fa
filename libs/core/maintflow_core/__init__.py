"""maintflow's domain: models, settings, cron logic, the clock and the use-cases the
services call."""
