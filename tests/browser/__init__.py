"""EmoLens tests: tests/browser."""
