"""The two inbound store endpoints: authenticate the caller, store durably, apply."""
