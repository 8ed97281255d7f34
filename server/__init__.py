"""Composition root: app factory, CLI, middleware, embedded servers."""
