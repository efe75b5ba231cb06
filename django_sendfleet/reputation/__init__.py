"""Bounce and complaint rates, their levels, and the guard that holds bulk mail at danger."""
