"""The HTTP API (FastAPI): validates, authorises, reads and writes rows. It never fans out."""
