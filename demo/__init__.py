"""The offline demo (`branchbot demo`): everything in one process against the local emulator,
with a chat in the terminal. The only production-side code that imports the emulator."""
