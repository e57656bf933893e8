"""weibao agent: inventory, pollers, spool and shipper that run on the client network."""
