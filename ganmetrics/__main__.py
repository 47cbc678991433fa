"""``python -m ganmetrics`` (and ``torchrun -m ganmetrics``): the command line."""

from .cli import main

main()
