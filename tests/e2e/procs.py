"""The process harness of the end-to-end and chaos tests now lives in the test kit (tests/kit:
`procs` for one process, `cluster` for a set of them on one database, `lease` for the scheduler
lease). The names stay importable from here."""

from __future__ import annotations

from tests.kit.cluster import Cluster, cluster_env
from tests.kit.db import plain_pg_url
from tests.kit.lease import Lease, holder_pid
from tests.kit.logs import assert_no_job_failures, last_json_object
from tests.kit.poll import poll_until
from tests.kit.procs import (
    STOP_GRACE_S,
    Proc,
    ProcessFailed,
    TcpConnection,
    clean_environ,
    free_port,
    group_pids,
    maintflow_command,
    spawn,
    tcp_connections,
)

__all__ = [
    "STOP_GRACE_S",
    "Cluster",
    "Lease",
    "Proc",
    "ProcessFailed",
    "TcpConnection",
    "assert_no_job_failures",
    "clean_environ",
    "cluster_env",
    "free_port",
    "group_pids",
    "holder_pid",
    "last_json_object",
    "maintflow_command",
    "plain_pg_url",
    "poll_until",
    "spawn",
    "tcp_connections",
]
