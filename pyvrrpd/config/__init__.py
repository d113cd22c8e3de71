"""Configuration front end: keepalived.conf and YAML into one typed model."""
