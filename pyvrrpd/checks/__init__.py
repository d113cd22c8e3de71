"""pyvrrpd.checks."""
