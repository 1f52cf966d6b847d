"""EmoLens tests: tests."""
