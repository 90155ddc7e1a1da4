from crossclear._cli import main

raise SystemExit(main())
