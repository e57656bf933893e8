"""The collector's HTTP side: the application factory, authentication, one router per resource, the server."""
