"""Looking posts and discussions up: query building, result formatting, pagination (no discord)."""
