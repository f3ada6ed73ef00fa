"""The app factory uvicorn imports in distributed mode (`maintflow api`)."""

from __future__ import annotations

from fastapi import FastAPI

from maintflow_api.app import create_app
from maintflow_core.settings import Settings


def app_from_env() -> FastAPI:
    return create_app(Settings())
