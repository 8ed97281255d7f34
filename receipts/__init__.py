"""Store verification and store API clients: Apple and Google words stop here."""
