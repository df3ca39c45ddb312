from qrspec.cli import main

main()
