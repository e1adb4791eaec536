"""The `micado` command line and its client of the REST API."""
