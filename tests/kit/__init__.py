"""The test kit: what the unit, integration, end-to-end and chaos tests (and bench/) share, written
once. `poll` waits with a deadline, `logs` reads process logs, `procs` runs `maintflow`
processes, `cluster` a set of them on one database, `dev` the embedded mode, `lease` reads the
scheduler lease, `db` queries a database that may restart, `invariants` judges a run from the
database, `seed` makes one of each resource, `broker` handles Dramatiq brokers and Redis
namespaces, `zones` lists the zones a schedule may name, `prometheus` runs a real Prometheus
(and promtool) and reads what deploy/ asks of it, `throwaway` starts PostgreSQL and Redis servers
a test may stop and start."""
