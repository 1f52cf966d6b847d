"""EmoLens tests: tests/unit."""
