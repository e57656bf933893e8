"""Agent and collector in one process (``weibao run``) and the demo site: the one package that imports both."""
