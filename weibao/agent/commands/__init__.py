"""Handlers of the one-shot ``weibao`` subcommands (check, poll, inspect, demo)."""
