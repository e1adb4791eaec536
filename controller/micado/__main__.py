"""`python -m micado` is the `micado` command."""

from .cli import main

main()
