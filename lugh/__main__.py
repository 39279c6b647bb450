from lugh.cli import main

main()
