"""``python -m pmap.cli`` runs pmapctl."""

from pmap.cli.main import main

main()
