"""Inputs and stored outputs of the contract tests (tests/integration/test_contracts.py)."""
