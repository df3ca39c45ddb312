"""``python -m qrspec``: the ``qrspec`` command line (:func:`qrspec.cli.main`)."""

from qrspec.cli import main

main()
