"""The sending side: pick complete frames from a folder and push them over parallel connections."""
