"""Local stand-ins for the stores (test CA, fake APIs, signers), used by tests and the demo."""
