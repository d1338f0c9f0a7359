"""Shared DRA vocabulary (pure): quantities, API object views, opaque configs, the CEL environment."""
