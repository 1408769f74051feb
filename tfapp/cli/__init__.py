"""Thin command-line entry points; each defines flags and calls one library function."""
