"""Notifications of ticket changes: message model, channel config, email and webhook transports, dispatcher."""
