"""Example applications that use workerkit (run them with ``procman start -f Procfile.example``)."""
