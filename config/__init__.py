"""Configuration: settings from HELPDESK_* variables, the broker, and the desk's YAML files."""
