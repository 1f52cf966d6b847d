"""EmoLens tests: tests/app."""
