"""Fakes for testing code built on thrifty (each one named as a fake)."""
