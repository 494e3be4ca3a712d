"""Feed ingestion: fetch, parse, de-duplicate and schedule blog feeds (no discord import)."""
