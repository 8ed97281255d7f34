"""receiptd: self-hosted App Store / Google Play purchase validation and entitlements."""

__version__ = "0.1.0"
