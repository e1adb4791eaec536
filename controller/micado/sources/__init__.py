"""Inputs of the loop: Prometheus queries, alerts, rules and scrape targets."""
