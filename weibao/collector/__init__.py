"""weibao collector: ingest, storage, contract rules, tickets and reports."""
