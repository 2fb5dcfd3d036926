"""The web server: the public gallery of clips, a page per clip, /healthz and /metrics.

It runs inside ``reelbot run`` (:mod:`bot.web.server`, beside the Discord client) or alone as
``reelbot web`` over the same data folder. Pages are rendered by jinja2 with autoescaping,
served under a strict content security policy; files come only from the clips folder, named
by job number; search is rate-limited per client.
"""
