"""Store-neutral subscription state, entitlement rules, storage and the read API."""
