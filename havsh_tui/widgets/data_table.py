"""A DataTable that redraws its cached lines once its columns are sized for new rows.

Textual's DataTable (8.x) measures new rows on its next Idle event and widens the columns
then, but lines drawn before that (the header of a table shown empty while its rows load,
and every row but the cursor's) stay in its render caches under the same key. The header
labels then no longer sit over their columns until something else clears the caches (a
resize, a cursor-type change). This subclass clears them once the widths are settled.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from textual import events
from textual.widgets import DataTable

CellType = TypeVar("CellType")


class SettledDataTable(DataTable[CellType], Generic[CellType]):
    async def _on_idle(self, event: events.Idle) -> None:
        # Runs before DataTable's own _on_idle (handlers run down the class hierarchy):
        # note whether it has columns to size, and redraw right after it did.
        if self._require_update_dimensions or self._updated_cells:
            self.call_later(self._redraw_settled)

    def _redraw_settled(self) -> None:
        self._clear_caches()
        self.refresh()


__all__ = ["SettledDataTable"]

