"""EmoLens tests: tests/integration."""
