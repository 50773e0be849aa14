"""The operations. Plain arguments in, a Reporter for progress; no Textual (DESIGN.md)."""
