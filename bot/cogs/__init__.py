"""One cog per feature, each loaded by :class:`bot.client.ReelBot` from its ``setup``."""
