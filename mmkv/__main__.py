"""``python -m mmkv``: the same program as the ``mmkv`` command (see :mod:`mmkv.cli`)."""

from mmkv.cli import main

raise SystemExit(main())
