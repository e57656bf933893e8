"""The web console served by the collector at ``/``: server-rendered pages (Jinja2 templates under
``templates/``), a little progressive JavaScript and every asset vendored under ``static/`` (the client's
network has no internet). People log in with accounts and roles; API tokens never open it.
"""
