"""Store implementations: memory, the workspace JSON file, Redis."""
