from workers.inference.server import main

raise SystemExit(main())
