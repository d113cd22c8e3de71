"""pyvrrpd.balancer."""
