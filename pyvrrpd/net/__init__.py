"""pyvrrpd.net."""
