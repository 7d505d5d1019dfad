"""The command line: one thin module per command or command group, loaded on demand."""
