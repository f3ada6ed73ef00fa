"""Names of the broker queues, shared by the workers (which consume them) and the API (which
reports their depth) without either importing the other."""

FANOUT_QUEUE = "fanout"
SESSIONS_QUEUE = "sessions"
QUEUES = (FANOUT_QUEUE, SESSIONS_QUEUE)
