"""HTTP entry points: the store webhooks, the app and service API, and what every handler shares
(authentication, typed app keys, error mapping, middleware). Handlers parse, call one use case
of `services/`, render."""
