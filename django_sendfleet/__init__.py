"""Send Django email through the SendFleet transactional email API."""

__version__ = "0.1.0"
