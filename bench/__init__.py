"""Benchmarks of pyvrrpd beside keepalived 2.2.7 (run with bench/run)."""
