"""``python -m ferkit`` runs the CLI (also what ``torchrun -m ferkit`` uses)."""

from ferkit.cli import main

main()
