"""Process machinery every layer may use: background tasks with one lifecycle."""
