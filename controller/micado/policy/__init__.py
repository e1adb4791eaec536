"""Scaling policies at run time: the rule sandbox and (next) the rule semantics."""
