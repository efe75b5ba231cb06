"""Is email through SendFleet going to work: system checks and ``manage.py sendfleet_check``."""
