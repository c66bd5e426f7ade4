"""``python -m puccicam`` runs the command line."""

from puccicam.cli import main

main()
