"""Send Django email through the SendFleet transactional email API."""

__version__ = "0.1.0"

# The error table gives every exception class its error_code: bound whenever the package is.
from . import error_table as _error_table  # noqa: F401
