from mtalign.cli import main

raise SystemExit(main())
