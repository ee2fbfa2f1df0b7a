"""alma."""
