from gqn.cli import main

main()
