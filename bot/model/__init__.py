"""Plain records shared by storage and the feature packages: frozen dataclasses, Literals and tiny
pure helpers. Nothing here imports anything of the project."""
