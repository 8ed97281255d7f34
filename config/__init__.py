"""Typed, frozen settings loaded from TOML and the environment; logging set-up."""
