"""Store fakes used only by the tests (the demo kit shared with the CLI is `simulators/`)."""
