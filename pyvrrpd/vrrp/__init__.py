"""pyvrrpd.vrrp."""
