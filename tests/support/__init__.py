"""What the tests share: helpers, fixtures registered by tests/conftest.py, test projects."""
