"""Lugh as an MCP server: the tools and resources (server), Streamable HTTP (http), stdio."""
