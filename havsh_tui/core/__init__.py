"""Domain model, naming rules, settings, inventory and secrets. No I/O but files, no Textual."""
