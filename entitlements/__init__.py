"""The pure core: store-neutral purchases and subscription state, entitlement rules, ownership,
grants, the replay and reconciliation planners. No I/O: no database, cache, HTTP or clock of its
own (tests/unit/test_layers.py checks the imports)."""
