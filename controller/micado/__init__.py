"""MiCADO successor: compile TOSCA ADTs, deploy them on Kubernetes and scale them."""

__version__ = "0.1.0"
