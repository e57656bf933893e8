"""The collector's ``weibao`` subcommands; each module has ``register(subparsers)`` (entry points)."""
