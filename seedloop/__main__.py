from seedloop.cli import main

main()
