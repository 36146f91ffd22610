"""perfd for coding agents: the MCP server (`perfd mcp`) and what it answers with."""
