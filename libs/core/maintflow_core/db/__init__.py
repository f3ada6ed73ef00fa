"""Database plumbing: the declarative base, portable column types, engines and sessions."""
