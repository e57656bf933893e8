"""People and what they did: console accounts, sessions, login throttling and the audit log.

    accounts   users with roles (admin, engineer, client), passwords hashed with argon2id
    sessions   console logins: random ids kept hashed, idle and absolute timeouts, CSRF tokens, logout
    throttle   failed logins counted per account and per address, with a temporary lockout
    audit      who did what, when, from where, through which door (console, API, CLI)

API bearer tokens are another door (``weibao.collector.auth``): a session is never a token and a token
never a session; the HTTP dependencies keep them apart.
"""
