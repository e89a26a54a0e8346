"""The receiving side: listen for senders, land their files atomically under an output folder."""
