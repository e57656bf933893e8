"""Fault tickets: model and transition table, pure state machine, SQL persistence, JSON views."""
