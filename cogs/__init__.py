"""Discord glue: one cog per concern, each loaded as an extension by the bot's setup_hook."""
