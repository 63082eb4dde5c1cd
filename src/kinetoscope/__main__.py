from kinetoscope.cli import main

raise SystemExit(main())
