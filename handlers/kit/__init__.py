"""The chat helpers the handlers share: keyboards, filters, form parsing, charts, command menus."""
