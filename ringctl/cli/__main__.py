from ringctl.cli import main

main()
