"""Dramatiq workers: the fan-out of fired batches into one session per target."""
