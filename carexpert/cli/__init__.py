"""The ``carexpert`` command: thin argparse layer over the core."""
