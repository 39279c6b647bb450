"""The commands every front door shares (DESIGN §9): parse, call one service, render a Reply."""
