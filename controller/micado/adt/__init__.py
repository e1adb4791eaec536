"""The ADT compiler: MiCADO Application Description Templates to Kubernetes and scaling plans."""

from .compiler import app_id_from_filename, compile_adt
from .errors import AdtError, Problem
from .model import CompiledApp, Plan

__all__ = ["AdtError", "CompiledApp", "Plan", "Problem", "app_id_from_filename", "compile_adt"]
