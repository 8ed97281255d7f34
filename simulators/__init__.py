"""The demo and test kit: local stand-ins for the stores, not used by the serving code path.

A test Apple CA and payload builders (`apple_ca`), Apple lifecycle scenarios
(`apple_scenarios`), Google test keys and push bodies (`google_signer`), Play API documents
(`play_purchases`), a fake Play Developer API (`fake_play`) and the Google simulator that
hosts it (`simulate_google`). The tests and `bench/` use it; the server imports it lazily,
only in `server/simulate.py` for `receiptd demo init` and `receiptd simulate apple|google`
(whose argument parser lists the kit's event names). No module of `receipts/`, `webhooks/`,
`purchases/`, `entitlements/` or `config/` imports it, nor does the app `create_app` builds,
and nothing here is ever trusted by a real configuration.
"""
