"""Notes: each one saved gets its words counted by a background job."""
