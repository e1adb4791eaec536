"""`python -m micado` is the `micado` command."""

from micado.cli.main import main

main()
