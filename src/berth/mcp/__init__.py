"""berth's MCP server: its tools for AI agents, over stdio (`berth mcp`) or streamable HTTP
(`/mcp` on the API port). See `berth.mcp.server`."""
