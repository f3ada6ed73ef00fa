"""Pydantic request and response models: the shapes of API.md. Requests forbid unknown fields."""
