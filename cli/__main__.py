from logtap.cli import main

main()
