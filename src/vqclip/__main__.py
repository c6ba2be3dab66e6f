"""``python -m vqclip``: the same as the ``vqclip`` command."""

from vqclip.cli import main

raise SystemExit(main())
