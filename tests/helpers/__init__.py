"""Shared test helpers (independent references live here, never in src/)."""
