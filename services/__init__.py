"""Use cases, each written once: store messages, operator actions, replay, reconciliation,
retention and the outboxes. They own transactions and call `storage/`, `cache/` and the store
port; they never see HTTP."""
