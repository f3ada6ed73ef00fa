"""The IANA zones a schedule may name: every zone the host's tzdata lists, less `localtime` (the
host's own zone, which `cron.validate_timezone` refuses so that a schedule means the same on
every machine). Tests that draw or walk zones take them from here."""

from __future__ import annotations

import zoneinfo

HOST_ONLY_ZONES = frozenset({"localtime"})
SCHEDULE_ZONES: tuple[str, ...] = tuple(sorted(zoneinfo.available_timezones() - HOST_ONLY_ZONES))
