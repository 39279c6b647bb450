"""Small servers that speak the wire formats of the APIs Lugh reaches across the internet."""
