"""The dashboard at ``/ui/``: server-rendered pages over the store and the job queue (see ``routes``)."""
