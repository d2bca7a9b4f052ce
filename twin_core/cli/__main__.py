from twin_core.cli import main

main()
