from __future__ import annotations

from havsh_tui.cli import main

if __name__ == "__main__":
    main()
