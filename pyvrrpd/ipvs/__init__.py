"""pyvrrpd.ipvs."""
