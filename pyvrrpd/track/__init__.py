"""pyvrrpd.track."""
