"""The chat helpers the handlers share, each rule once: keyboards and the picker, the wizard's step,
cancel button and stale-button check, filters, form parsing, sending long texts and files, charts,
command menus, evidence photos."""
