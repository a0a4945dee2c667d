"""procman: a Procfile process supervisor in the spirit of Foreman."""

__version__ = "0.1.0"
