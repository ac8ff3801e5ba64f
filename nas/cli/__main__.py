"""``python -m nas.cli``."""

from nas.cli import main

main()
