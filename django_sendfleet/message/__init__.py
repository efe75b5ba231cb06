"""A Django message before it is sent: checked addresses and text, features, payloads."""
