"""Actuators: I/O only. Kubernetes (workloads, nodes) and VM node groups through ansible-runner."""
