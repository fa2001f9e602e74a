from seqtag.cli import main

main()
