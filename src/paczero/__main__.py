from paczero.cli import main

raise SystemExit(main())
