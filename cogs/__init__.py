"""Discord glue: one cog per concern, each loaded as an extension by the bot's setup_hook."""

from __future__ import annotations

import pkgutil


def extension_names() -> list[str]:
    """Every public module of this package (``_``-prefixed ones are helpers), each an extension."""
    return sorted(f"{__name__}.{module.name}" for module in pkgutil.iter_modules(__path__)
                  if not module.ispkg and not module.name.startswith("_"))
