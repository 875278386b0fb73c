"""``python -m service.cli``: the nnserve command line."""

from service.cli.main import main

main()
