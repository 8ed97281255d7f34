"""Forward-only SQL migrations, `NNNN_slug.sql`, applied in order by storage.migrations."""
