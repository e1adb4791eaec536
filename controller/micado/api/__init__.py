"""The controller's REST API and its bearer-token authentication."""
